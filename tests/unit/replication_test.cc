// Replication at the backup (ps/server/server.h, server.replicas 1): a real
// scheduler and two parameter servers on threads over ZeroMQ on loopback,
// driven by a worker-role member from the test. Server 1 is the backup of
// partition 0; the test plays partition 0's primary and sends it crafted
// REPLICATE updates out of order and twice: they are applied in the
// primary's order (an update ahead of a gap waits for it), each once, and a
// copy of an applied one is acknowledged again. And the whole chain: a push
// through the primary is acknowledged only after the backup applied it.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <thread>

#include "common/cluster/cluster_member.h"
#include "common/cluster/job_phase.h"
#include "common/net/zmq_transport.h"
#include "ps/scheduler/scheduler.h"
#include "ps/server/server.h"

namespace mtps {
namespace {

constexpr int64_t kHangGuardMs = 60000;

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/mtps_replication_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  CHECK(dir != nullptr);
  return dir;
}

config::Config ReplicatedJob() {
  config::Config c;
  c.mutable_model()->set_embedding_dim(4);
  c.mutable_model()->mutable_mmoe();
  c.mutable_train()->set_seed(9);
  c.mutable_server()->set_embedding_init_scale(0.5f);
  c.mutable_server()->mutable_sparse_optimizer()->mutable_sgd()->set_learning_rate(1.0f);
  c.mutable_server()->set_replicas(1);
  c.mutable_cluster()->set_heartbeat_interval_ms(50);
  c.mutable_cluster()->set_heartbeat_timeout_ms(10000);
  c.mutable_cluster()->set_register_timeout_ms(kHangGuardMs);
  c.mutable_cluster()->set_request_timeout_ms(kHangGuardMs);
  c.mutable_checkpoint()->set_enabled(false);
  return c;
}

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    run_dir_ = MakeTempDir();
    SchedulerOptions o;
    o.config = ReplicatedJob();
    o.num_servers = 2;
    o.num_workers = 1;
    o.run_dir = run_dir_;
    scheduler_ = std::make_unique<Scheduler>(std::make_unique<ZmqTransport>(&scheduler_ctx_), o);
    ASSERT_TRUE(scheduler_->Start().ok());
    const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(scheduler_->port());
    scheduler_thread_ = std::thread([this] { scheduler_status_ = scheduler_->Run(); });
    for (int rank = 0; rank < 2; ++rank) {
      server_threads_.emplace_back([this, rank, endpoint] {
        ClusterMember member(std::make_unique<ZmqTransport>(&server_ctx_[rank]),
                             Options(wire::SERVER, rank, endpoint));
        Status s = member.Join();
        if (s.ok()) {
          auto server = ParameterServer::Create(&member);
          s = server.ok() ? server.value()->Run() : server.status();
        }
        member.Leave();
        server_status_[rank] = s;
      });
    }
    worker_ = std::make_unique<ClusterMember>(std::make_unique<ZmqTransport>(&ctx_),
                                              Options(wire::WORKER, 0, endpoint));
    Status s = worker_->Join();
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kStart), 1).ok());
  }

  MemberOptions Options(wire::Role role, int rank, const std::string& endpoint) {
    MemberOptions o;
    o.role = role;
    o.requested_rank = rank;
    o.scheduler_endpoint = endpoint;
    o.register_timeout_ms = kHangGuardMs;
    return o;
  }

  void TearDown() override {
    if (worker_ != nullptr) {
      EXPECT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kTrained), 1).ok());
      Message report(wire::EVAL_REPORT);
      report.meta.mutable_eval_report()->add_tasks("t");
      report.payloads.push_back(Payload::FromVector(std::vector<float>{0.9f, 0.1f}));
      report.payloads.push_back(Payload::FromVector(std::vector<float>{1, 0}));
      EXPECT_TRUE(worker_->rpc().Call(kSchedulerNodeId, std::move(report), kHangGuardMs).ok());
      EXPECT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kEnd), 1).ok());
      worker_->Leave();
      worker_.reset();
    }
    for (std::thread& t : server_threads_) t.join();
    scheduler_thread_.join();
    EXPECT_TRUE(scheduler_status_.ok()) << scheduler_status_;
    for (const Status& s : server_status_) EXPECT_TRUE(s.ok()) << s;
  }

  // A REPLICATE of partition 0 (a push of `grad` to `key`) as its primary
  // would send it, on the worker's own connection to server 1.
  Status SendReplicate(uint64_t seq, uint64_t key, float grad) {
    Rpc& rpc = worker_->rpc();
    Message m(wire::REPLICATE);
    m.meta.set_request_id(1000 + seq);
    m.meta.set_sender(rpc.self_id());
    m.meta.set_incarnation(7);
    m.meta.set_done_below(1000);
    m.meta.set_cluster_epoch(rpc.epoch());
    m.meta.set_timeout_ms(kHangGuardMs);
    m.meta.set_partition(0);
    m.meta.set_replica_seq(seq);
    m.meta.set_replica_op(wire::PUSH_SPARSE);
    m.meta.mutable_origin()->set_sender(99);
    m.meta.mutable_origin()->set_incarnation(5);
    m.meta.mutable_origin()->set_request_id(seq + 1);
    m.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{key}));
    m.payloads.push_back(Payload::FromVector(std::vector<float>{grad, 0, 0, 0}));
    return rpc.transport()->Send(worker_->server_ids()[1], std::move(m));
  }

  // The REPLICATE answers from server 1, in arrival order, until `n` came.
  std::vector<uint64_t> Answers(size_t n) {
    std::vector<uint64_t> ids;
    const Deadline guard = Deadline::In(kHangGuardMs);
    while (ids.size() < n && !guard.Expired()) {
      auto in = worker_->rpc().transport()->Receive(Deadline::In(50));
      if (in.ok() && in->msg.meta.op() == wire::REPLICATE) {
        EXPECT_EQ(in->msg.meta.status(), wire::OK) << in->msg.meta.status_message();
        ids.push_back(in->msg.meta.request_id());
      }
    }
    return ids;
  }

  zmq::context_t ctx_{1}, scheduler_ctx_{1}, server_ctx_[2]{zmq::context_t(1), zmq::context_t(1)};
  std::string run_dir_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ClusterMember> worker_;
  std::thread scheduler_thread_;
  std::vector<std::thread> server_threads_;
  Status scheduler_status_, server_status_[2];
};

TEST_F(ReplicationTest, BackupAppliesUpdatesInThePrimarysOrderEachOnce) {
  // seq 1 and 2 arrive before seq 0: held until it does.
  ASSERT_TRUE(SendReplicate(1, 5, 1.0f).ok());
  ASSERT_TRUE(SendReplicate(2, 5, 1.0f).ok());
  ASSERT_TRUE(SendReplicate(0, 5, 1.0f).ok());
  // Answered once applied, in the order applied: 0, 1, 2.
  EXPECT_EQ(Answers(3), (std::vector<uint64_t>{1000, 1001, 1002}));
  // A copy of an applied one is acknowledged again, not applied.
  ASSERT_TRUE(SendReplicate(1, 5, 1.0f).ok());
  EXPECT_EQ(Answers(1), (std::vector<uint64_t>{1001}));
}

TEST_F(ReplicationTest, APushIsAcknowledgedOnceBothCopiesHoldIt) {
  // Through the primary of partition 0 (server 0), which forwards it.
  Rpc& rpc = worker_->rpc();
  Message push(wire::PUSH_SPARSE);
  push.meta.set_partition(0);
  push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{42}));
  push.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3, 4}));
  auto r = rpc.Call(worker_->server_ids()[0], std::move(push), kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  // The backup holds it: its next update is seq 1, so a crafted seq 1 is
  // applied at once (answered), where a seq 0 would be a copy.
  ASSERT_TRUE(SendReplicate(1, 43, 1.0f).ok());
  EXPECT_EQ(Answers(1), (std::vector<uint64_t>{1001}));
  // A push for a partition this server does not serve is refused (the
  // client resends it where the partition map says).
  Message wrong(wire::PUSH_SPARSE);
  wrong.meta.set_partition(1);
  wrong.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{42}));
  wrong.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3, 4}));
  RetryPolicy once = rpc.retry();
  RetryPolicy none = once;
  none.max_resends = 0;
  rpc.set_retry(none);
  auto refused = rpc.Call(worker_->server_ids()[0], std::move(wrong), kHangGuardMs);
  rpc.set_retry(once);
  EXPECT_EQ(refused.status().code(), StatusCode::kStaleEpoch) << refused.status();
  EXPECT_NE(refused.status().message().find("not the primary of partition 1"), std::string::npos)
      << refused.status();
}

}  // namespace
}  // namespace mtps
