// A real scheduler and parameter server on their own threads, over ZeroMQ on
// loopback (port 0), driven by a worker-role member from the test: the
// registration handshake, pulls and pushes, rejection of bad requests without
// harm to the server, the end of a job, and abort on a silent node.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <zmq_addon.hpp>

#include "common/base/durable_file.h"
#include "common/cluster/cluster_member.h"
#include "common/cluster/job_phase.h"
#include "common/cluster/partition.h"
#include "common/net/request_window.h"
#include "common/net/zmq_transport.h"
#include "proto/checkpoint.pb.h"
#include "ps/scheduler/checkpoint_store.h"
#include "ps/scheduler/scheduler.h"
#include "ps/server/server.h"
#include "ps/server/server_shard.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace {

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "/mtps_cluster_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  CHECK(dir != nullptr);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Deadline of every wait that only guards against a hang: generous, so a slow
// or ThreadSanitizer build passes alike.
constexpr int64_t kHangGuardMs = 60000;
// Node ids: the scheduler is 0, the one server 1, the worker 2.
constexpr int kServerNodeId = 1;

// The scheduler's transport, counting the heartbeats it receives from node
// `counted` (a test hook: tests wait for heartbeats instead of for time).
class HeartbeatCountingTransport : public Transport {
 public:
  HeartbeatCountingTransport(std::unique_ptr<Transport> inner, int counted,
                             std::atomic<int>* heartbeats)
      : inner_(std::move(inner)), counted_(counted), heartbeats_(heartbeats) {}
  StatusOr<int> Bind(const std::string& host, int port) override {
    return inner_->Bind(host, port);
  }
  void NamePeer(int peer, const std::string& name) override { inner_->NamePeer(peer, name); }
  Status Connect(int peer, const std::string& endpoint) override {
    return inner_->Connect(peer, endpoint);
  }
  Status Send(int peer, Message msg) override { return inner_->Send(peer, std::move(msg)); }
  Status Reply(const std::string& reply_to, Message msg) override {
    return inner_->Reply(reply_to, std::move(msg));
  }
  StatusOr<Incoming> Receive(Deadline deadline) override {
    StatusOr<Incoming> in = inner_->Receive(deadline);
    if (in.ok() && in->msg.meta.op() == wire::HEARTBEAT && !in->msg.meta.is_response() &&
        in->msg.meta.sender() == counted_) {
      heartbeats_->fetch_add(1);
    }
    return in;
  }
  void Wake() override { inner_->Wake(); }

 private:
  std::unique_ptr<Transport> inner_;
  const int counted_;
  std::atomic<int>* heartbeats_;
};

config::Config SmallJob() {
  config::Config c;
  c.mutable_model()->set_embedding_dim(4);
  c.mutable_model()->mutable_mmoe();
  c.mutable_train()->set_seed(9);
  c.mutable_server()->set_embedding_init_scale(0.5f);
  c.mutable_server()->mutable_sparse_optimizer()->mutable_adagrad()->set_learning_rate(0.1f);
  c.mutable_cluster()->set_heartbeat_interval_ms(50);
  // Generous: only the tests that set their own timeout want a node found
  // silent; in the others the test thread (the worker) may be busy for a
  // while between calls on a slow (ThreadSanitizer) machine.
  c.mutable_cluster()->set_heartbeat_timeout_ms(10000);
  c.mutable_cluster()->set_register_timeout_ms(kHangGuardMs);
  c.mutable_cluster()->set_request_timeout_ms(kHangGuardMs);
  return c;
}

// Runs a scheduler (1 server, 1 worker) and a server on threads.
class ClusterTest : public ::testing::Test {
 protected:
  void StartCluster(const config::Config& config) {
    run_dir_ = MakeTempDir();
    SchedulerOptions o;
    o.config = config;
    o.num_servers = 1;
    o.num_workers = 1;
    o.run_dir = run_dir_;
    scheduler_ = std::make_unique<Scheduler>(
        std::make_unique<HeartbeatCountingTransport>(
            std::make_unique<ZmqTransport>(&scheduler_ctx_), kServerNodeId, &server_heartbeats_),
        o);
    ASSERT_TRUE(scheduler_->Start().ok());
    endpoint_ = "tcp://127.0.0.1:" + std::to_string(scheduler_->port());
    scheduler_thread_ = std::thread([this] { scheduler_status_ = scheduler_->Run(); });
    server_thread_ = std::thread([this] {
      ClusterMember member(std::make_unique<ZmqTransport>(&server_ctx_), Options(wire::SERVER));
      server_status_ = member.Join();
      if (!server_status_.ok()) return;
      auto server = ParameterServer::Create(&member);
      if (server.ok()) server.value()->set_test_hooks(server_hooks_);
      server_status_ = server.ok() ? server.value()->Run() : server.status();
      if (server.ok()) server_stats_ = server.value()->stats();
      member.Leave();
    });
    worker_ = std::make_unique<ClusterMember>(std::make_unique<ZmqTransport>(&ctx_),
                                              Options(wire::WORKER));
    Status s = worker_->Join();
    ASSERT_TRUE(s.ok()) << s;
  }

  MemberOptions Options(wire::Role role) {
    MemberOptions o;
    o.role = role;
    o.scheduler_endpoint = endpoint_;
    o.register_timeout_ms = kHangGuardMs;
    return o;
  }

  // Finishes the job the way a worker does: the start and trained barriers,
  // then FinishJobAfterTraining.
  void FinishJob() {
    ASSERT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kStart), 1).ok());
    ASSERT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kTrained), 1).ok());
    FinishJobAfterTraining();
  }

  // After the trained barrier: the evaluation report, the end barrier.
  void FinishJobAfterTraining() {
    Message report(wire::EVAL_REPORT);
    report.meta.mutable_eval_report()->add_tasks("t");
    report.meta.mutable_eval_report()->set_train_examples(4);
    report.payloads.push_back(Payload::FromVector(std::vector<float>{0.9f, 0.1f, 0.8f, 0.3f}));
    report.payloads.push_back(Payload::FromVector(std::vector<float>{1, 0, 1, 0}));
    auto r = worker_->rpc().Call(kSchedulerNodeId, std::move(report), kHangGuardMs);
    ASSERT_TRUE(r.ok()) << r.status();
    Status s = worker_->Barrier(JobBarrierName(JobBarrier::kEnd), 1);
    ASSERT_TRUE(s.ok()) << s;
    worker_->Leave();
  }

  void Join() {
    if (server_thread_.joinable()) server_thread_.join();
    if (scheduler_thread_.joinable()) scheduler_thread_.join();
  }

  void TearDown() override {
    worker_.reset();
    Join();
  }

  int server_id() { return worker_->server_ids().at(0); }

  // One ZeroMQ context (and I/O thread) per node, as in separate processes:
  // the worker's flood of traffic does not queue the scheduler's heartbeat
  // answers behind it. ctx_ is the worker's (and raw test sockets').
  zmq::context_t ctx_{1}, scheduler_ctx_{1}, server_ctx_{1};
  std::string run_dir_;
  std::string endpoint_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ClusterMember> worker_;
  std::thread scheduler_thread_, server_thread_;
  Status scheduler_status_, server_status_;
  ParameterServer::Stats server_stats_;      // after the server's Run
  std::atomic<int> server_heartbeats_{0};    // received by the scheduler
  ParameterServer::TestHooks server_hooks_;  // set before StartCluster
};

Message Pull(std::vector<uint64_t> keys) {
  Message m(wire::PULL_SPARSE);
  m.payloads.push_back(Payload::FromVector(std::move(keys)));
  return m;
}

std::vector<float> Values(const Message& m) {
  std::vector<float> scratch;
  const float* p = m.payloads.at(0).Data<float>(&scratch);
  return std::vector<float>(p, p + m.payloads[0].count());
}

TEST_F(ClusterTest, RegistrationAssignsRanksIdsEpochAndConfig) {
  StartCluster(SmallJob());
  EXPECT_EQ(worker_->self().role(), wire::WORKER);
  EXPECT_EQ(worker_->self().rank(), 0);
  EXPECT_EQ(worker_->self().node_id(), 2);  // scheduler 0, server 1, worker 2
  EXPECT_EQ(server_id(), 1);
  EXPECT_NE(worker_->rpc().epoch(), 0u);
  EXPECT_EQ(worker_->config().model().embedding_dim(), 4);  // the config came from the scheduler
  std::string cluster = ReadFile(run_dir_ + "/cluster.json");
  EXPECT_NE(cluster.find("\"role\": \"server\""), std::string::npos) << cluster;
  EXPECT_NE(cluster.find(std::to_string(worker_->rpc().epoch())), std::string::npos);
  FinishJob();
  Join();
  EXPECT_TRUE(scheduler_status_.ok()) << scheduler_status_;
  EXPECT_TRUE(server_status_.ok()) << server_status_;
  std::string summary = ReadFile(run_dir_ + "/summary.json");
  EXPECT_NE(summary.find("\"t\": {\n      \"auc\": 1.0,"), std::string::npos) << summary;
}

TEST_F(ClusterTest, PullAndPushFollowInitialValueAndAdagrad) {
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  auto pulled = rpc.Call(server_id(), Pull({5, 0}), kHangGuardMs);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::vector<float> v = Values(pulled.value());
  ASSERT_EQ(v.size(), 8u);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(v[j], InitialValue(9, 5, j, 0.5f));

  Message push(wire::PUSH_SPARSE);
  push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{5}));
  push.payloads.push_back(Payload::FromVector(std::vector<float>{1, -1, 0.5f, 0}));
  ASSERT_TRUE(rpc.Call(server_id(), std::move(push), kHangGuardMs).ok());
  auto after = rpc.Call(server_id(), Pull({5}), kHangGuardMs);
  ASSERT_TRUE(after.ok());
  std::vector<float> w = Values(after.value());
  const float g[4] = {1, -1, 0.5f, 0};
  for (int j = 0; j < 4; ++j) {
    float acc = 0.1f + g[j] * g[j];  // default initial_accumulator 0.1
    EXPECT_NEAR(w[j], v[j] - 0.1f * g[j] / std::sqrt(acc), 1e-6) << j;
  }
  FinishJob();
}

// Exactly-once at the server: a copy of an applied push (same sender,
// incarnation and request id) is answered OK without being applied again,
// a copy below its sender's done_below is dropped, and UPDATE_COUNTS tells
// both. The copies are crafted on the worker's own connection, so they
// arrive in order behind each other.
TEST_F(ClusterTest, ACopyOfAnAppliedPushIsAnsweredButNotAppliedAgain) {
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  Transport* raw = rpc.transport();
  auto pushed_once = [&](uint64_t id, uint64_t done_below) {
    Message push(wire::PUSH_SPARSE);
    push.meta.set_request_id(id);
    push.meta.set_sender(rpc.self_id());
    push.meta.set_incarnation(424242);
    push.meta.set_done_below(done_below);
    push.meta.set_cluster_epoch(rpc.epoch());
    push.meta.set_timeout_ms(kHangGuardMs);
    push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{5}));
    push.payloads.push_back(Payload::FromVector(std::vector<float>{1, -1, 0.5f, 0}));
    return raw->Send(server_id(), std::move(push));
  };
  // Waits (on the raw transport, so the Rpc does not drop it as unmatched)
  // for the server's answer to request `id`.
  auto answer = [&](uint64_t id) -> StatusOr<Message> {
    const Deadline guard = Deadline::In(kHangGuardMs);
    while (!guard.Expired()) {
      auto in = raw->Receive(Deadline::In(50));
      if (in.ok() && in->msg.meta.request_id() == id && in->msg.meta.op() == wire::PUSH_SPARSE) {
        return std::move(in->msg);
      }
    }
    return Status::DeadlineExceeded("no answer to request " + std::to_string(id));
  };
  auto before = rpc.Call(server_id(), Pull({5}), kHangGuardMs);
  ASSERT_TRUE(before.ok()) << before.status();
  const std::vector<float> v = Values(before.value());

  ASSERT_TRUE(pushed_once(1000, 1000).ok());
  auto first = answer(1000);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->meta.status(), wire::OK);
  ASSERT_TRUE(pushed_once(1000, 1000).ok());  // a resend after the answer was lost
  auto again = answer(1000);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->meta.status(), wire::OK);
  ASSERT_TRUE(pushed_once(1000, 1001).ok());  // a late copy: the sender moved on

  auto counts = rpc.Call(server_id(), Message(wire::UPDATE_COUNTS), kHangGuardMs);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->meta.update_counts().applied(), 1);
  EXPECT_EQ(counts->meta.update_counts().duplicates_dropped(), 2);

  auto after = rpc.Call(server_id(), Pull({5}), kHangGuardMs);
  ASSERT_TRUE(after.ok());
  const std::vector<float> w = Values(after.value());
  const float g[4] = {1, -1, 0.5f, 0};
  for (int j = 0; j < 4; ++j) {
    const float acc = 0.1f + g[j] * g[j];  // one Adagrad step, not two
    EXPECT_NEAR(w[j], v[j] - 0.1f * g[j] / std::sqrt(acc), 1e-6) << j;
  }
  FinishJob();
}

// The job's final checkpoint, end to end over the network and every thread
// involved (shard threads copy, the writer thread writes, the receive thread
// reports, the scheduler commits): its shard files hold exactly the rows the
// server served, and reload into tables that answer the same.
TEST_F(ClusterTest, FinalCheckpointHoldsWhatTheServerServed) {
  config::Config c = SmallJob();
  c.mutable_server()->set_shard_threads(2);
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  ASSERT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kStart), 1).ok());
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 300; ++k) keys.push_back(k * 7919);
  Message push(wire::PUSH_SPARSE);
  push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>(keys)));
  std::vector<float> grads(keys.size() * 4);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = 0.01f * static_cast<float>(i % 13) - 0.05f;
  push.payloads.push_back(Payload::FromVector(std::move(grads)));
  const uint64_t push_id = rpc.DoneBelow(server_id());  // nothing outstanding: the next id
  ASSERT_TRUE(rpc.Call(server_id(), std::move(push), kHangGuardMs).ok());
  auto served = rpc.Call(server_id(), Pull(keys), kHangGuardMs);
  ASSERT_TRUE(served.ok()) << served.status();
  const std::vector<float> expected = Values(*served);

  // Leave training the way a trainer does: the final clock with its state.
  Message clock(wire::CLOCK);
  clock.meta.mutable_clock()->set_clock(1);
  clock.meta.mutable_clock()->set_finished(true);
  checkpoint::WorkerState state;
  state.set_rank(0);
  state.set_finished(true);
  clock.meta.mutable_clock()->set_worker_state(state.SerializeAsString());
  ASSERT_TRUE(rpc.Call(kSchedulerNodeId, std::move(clock), kHangGuardMs).ok());
  // The trained barrier returns once the checkpoint is committed.
  ASSERT_TRUE(worker_->Barrier(JobBarrierName(JobBarrier::kTrained), 1).ok());
  CheckpointStore store(run_dir_ + "/checkpoints");
  auto manifest = store.Verify(1);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->reason(), "trained");
  EXPECT_TRUE(manifest->scheduler().trained());
  EXPECT_EQ(manifest->shard_threads(), 2);

  SparseTable restored[2] = {SparseTable(ShardTableOptions(c)), SparseTable(ShardTableOptions(c))};
  size_t rows = 0;
  for (int shard = 0; shard < 2; ++shard) {
    const std::string path = store.DirFor(1) + "/server-0.shard-" + std::to_string(shard);
    auto bytes = ReadWholeFile(path);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    Status s = restored[shard].Restore(bytes->data(), bytes->size(), path);
    ASSERT_TRUE(s.ok()) << s;
    rows += restored[shard].size();
  }
  EXPECT_EQ(rows, keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    SparseTable& t = restored[KeyShard(keys[i], 2)];
    ASSERT_TRUE(t.Contains(keys[i])) << keys[i];
    float row[4];
    t.Pull(&keys[i], 1, /*create_missing=*/false, row);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(row[j], expected[i * 4 + j]) << keys[i];
  }
  // The push window is in the checkpoint: a late copy of the push is not
  // applied again by a server restored from it.
  const std::string window_path = store.DirFor(1) + "/server-0.window";
  auto window_bytes = ReadWholeFile(window_path);
  ASSERT_TRUE(window_bytes.ok()) << window_bytes.status();
  RequestWindow window;
  ASSERT_TRUE(window.Restore(*window_bytes, window_path, SteadyClock::now()).ok());
  EXPECT_NE(window.Begin({rpc.self_id(), rpc.incarnation(), push_id}, 0, SteadyClock::now()),
            RequestWindow::Seen::kNew);
  FinishJobAfterTraining();
}

// A server with several shard threads answers, over the network and with
// requests pipelined (a pull sent right behind a push, before its
// acknowledgement), exactly what one table applying them in order does.
TEST_F(ClusterTest, ShardedServerAnswersWhatOneTableDoesInOrder) {
  config::Config c = SmallJob();
  c.mutable_server()->set_shard_threads(3);
  config::Config one = c;
  one.mutable_server()->set_shard_threads(1);
  SparseTable reference(ShardTableOptions(one));
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  // No resends: a resent pull is served (and counted) again, and a slow
  // machine (TSAN) resends some, so the key counts below would not be exact.
  RetryPolicy no_resends = rpc.retry();
  no_resends.max_resends = 0;
  rpc.set_retry(no_resends);
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<float> grad(-1, 1);
  std::vector<std::vector<float>> expected, got;
  int failed = 0;
  int64_t keys_pushed = 0, keys_pulled = 0;
  for (int round = 0; round < 50; ++round) {
    std::vector<uint64_t> keys(1 + rng() % 200);
    for (auto& k : keys) k = rng() % 700;
    std::vector<float> g(keys.size() * 4);
    for (auto& x : g) x = grad(rng);
    reference.Push(keys.data(), keys.size(), g.data());
    keys_pushed += static_cast<int64_t>(keys.size());
    Message push(wire::PUSH_SPARSE);
    push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>(keys)));
    push.payloads.push_back(Payload::FromVector(std::move(g)));
    ASSERT_TRUE(rpc.StartAsync(server_id(), std::move(push), kHangGuardMs,
                               [&](StatusOr<Message>&& r) {
                                 if (!r.ok()) ++failed;
                               })
                    .ok());
    for (auto& k : keys) k = rng() % 700;
    std::vector<float> want(keys.size() * 4);
    reference.Pull(keys.data(), keys.size(), /*create_missing=*/true, want.data());
    expected.push_back(std::move(want));
    keys_pulled += static_cast<int64_t>(keys.size());
    const size_t slot = got.size();
    got.emplace_back();
    ASSERT_TRUE(rpc.StartAsync(server_id(), Pull(std::move(keys)), kHangGuardMs,
                               [&, slot](StatusOr<Message>&& r) {
                                 if (r.ok()) {
                                   got[slot] = Values(r.value());
                                 } else {
                                   ++failed;
                                 }
                               })
                    .ok());
  }
  while (rpc.outstanding() > 0) ASSERT_TRUE(worker_->Tick(Deadline::In(20)).ok());
  EXPECT_EQ(failed, 0);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "pull " << i;
  FinishJob();
  Join();
  ASSERT_TRUE(server_status_.ok()) << server_status_;
  EXPECT_EQ(server_stats_.shard_threads, 3);
  ASSERT_EQ(server_stats_.rows_per_shard.size(), 3u);
  for (int64_t rows : server_stats_.rows_per_shard) EXPECT_GT(rows, 100);
  EXPECT_EQ(server_stats_.rows, static_cast<int64_t>(reference.size()));
  EXPECT_EQ(server_stats_.pushes, 50);
  EXPECT_EQ(server_stats_.keys_pushed, keys_pushed);
  EXPECT_EQ(server_stats_.keys_pulled, keys_pulled);
}

TEST_F(ClusterTest, BadRequestsAreRejectedAndTheServerKeepsServing) {
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  auto expect_rejected = [&](Message m, StatusCode code, const std::string& text) {
    auto r = rpc.Call(server_id(), std::move(m), kHangGuardMs);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status();
    EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status();
  };
  Message wrong_count(wire::PUSH_SPARSE);
  wrong_count.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{1, 2}));
  wrong_count.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3}));
  expect_rejected(std::move(wrong_count), StatusCode::kInvalidArgument, "needs 8 gradient values");

  Message float_keys(wire::PULL_SPARSE);
  float_keys.payloads.push_back(Payload::FromVector(std::vector<float>{1}));
  expect_rejected(std::move(float_keys), StatusCode::kInvalidArgument, "must be U64");

  expect_rejected(Message(wire::PULL_DENSE), StatusCode::kUnavailable, "not initialised");
  expect_rejected(Message(wire::BARRIER), StatusCode::kInvalidArgument,
                  "does not serve op BARRIER");

  Message wrong_block(wire::INIT_DENSE);  // 3 values for a 4-parameter array
  wrong_block.meta.set_dense_total(4);
  wrong_block.payloads.push_back(Payload::FromVector(std::vector<float>{9, 9, 9}));
  expect_rejected(std::move(wrong_block), StatusCode::kInvalidArgument, "holds 4");

  Message dense(wire::INIT_DENSE);
  dense.meta.set_dense_total(3);
  dense.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3}));
  ASSERT_TRUE(rpc.Call(server_id(), std::move(dense), kHangGuardMs).ok());
  Message short_grad(wire::PUSH_DENSE);
  short_grad.payloads.push_back(Payload::FromVector(std::vector<float>{1}));
  expect_rejected(std::move(short_grad), StatusCode::kInvalidArgument, "3");

  uint64_t epoch = rpc.epoch();
  rpc.set_epoch(epoch + 1);
  // A STALE_EPOCH answer is normally resent (the epochs may yet agree, after
  // a failover); here they never will: no resends, to see the answer itself.
  const RetryPolicy retry = rpc.retry();
  RetryPolicy no_resends = retry;
  no_resends.max_resends = 0;
  rpc.set_retry(no_resends);
  expect_rejected(Pull({1}), StatusCode::kStaleEpoch, "epoch");
  rpc.set_retry(retry);
  rpc.set_epoch(epoch);

  // A raw peer sends a request without a deadline.
  std::string endpoint;
  for (const auto& n : worker_->nodes()) {
    if (n.role() == wire::SERVER) endpoint = "tcp://" + n.host() + ":" + std::to_string(n.port());
  }
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, static_cast<int>(kHangGuardMs));
  raw.connect(endpoint);
  Message no_deadline = Pull({1});
  no_deadline.meta.set_cluster_epoch(epoch);
  no_deadline.meta.set_request_id(99);
  ASSERT_TRUE(zmq::send_multipart(raw, EncodeMessage(std::move(no_deadline))));
  std::vector<zmq::message_t> reply;
  ASSERT_TRUE(zmq::recv_multipart(raw, std::back_inserter(reply)));
  auto decoded = DecodeMessage(std::move(reply));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->meta.status(), wire::INVALID_ARGUMENT);
  EXPECT_EQ(decoded->meta.request_id(), 99u);

  // Nothing was applied by the rejected requests, and the server still serves.
  auto pulled = rpc.Call(server_id(), Pull({1, 2}), kHangGuardMs);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::vector<float> v = Values(pulled.value());
  EXPECT_EQ(v[0], InitialValue(9, 1, 0, 0.5f));
  EXPECT_EQ(v[4], InitialValue(9, 2, 0, 0.5f));
  auto dense_values = rpc.Call(server_id(), Message(wire::PULL_DENSE), kHangGuardMs);
  ASSERT_TRUE(dense_values.ok());
  EXPECT_EQ(Values(dense_values.value()), (std::vector<float>{1, 2, 3}));
  FinishJob();
}

// Regression: a server whose request queue never emptied stopped sending
// heartbeats, and the scheduler aborted a healthy job.
TEST_F(ClusterTest, BusyServerKeepsTheJobAlive) {
  config::Config c = SmallJob();
  // A heartbeat may take 2 intervals to be answered (500 ms): room for a
  // slow, loaded machine, where each answer waits behind the flood.
  constexpr int kIntervalMs = 250, kTimeoutMs = 2500;
  c.mutable_cluster()->set_heartbeat_interval_ms(kIntervalMs);
  c.mutable_cluster()->set_heartbeat_timeout_ms(kTimeoutMs);
  // Two shard threads; more requests in flight (300) than the server queues
  // (kMaxQueuedRequests), so its receive thread also waits for room. Which
  // thread is the bottleneck depends on the build (under ThreadSanitizer it
  // is ZeroMQ's), so the test makes the queues fill: the shards' first
  // finished task waits at a gate that the receive thread opens when it
  // finds the queues full.
  c.mutable_server()->set_shard_threads(2);
  constexpr int kInFlight = 300;
  static_assert(ParameterServer::kMaxQueuedRequests < kInFlight);
  struct Gate {
    std::mutex mu;
    std::condition_variable opened;
    bool open = false;  // guarded by mu
  };
  auto gate = std::make_shared<Gate>();  // shared: may outlive a failed test body
  server_hooks_.task_done = [gate] {
    std::unique_lock<std::mutex> lock(gate->mu);
    // Never opened: the flow control was not taken (room_waits stays 0);
    // open it anyway so the test fails instead of hanging.
    gate->opened.wait_for(lock, std::chrono::milliseconds(kHangGuardMs),
                          [&] { return gate->open; });
    gate->open = true;
  };
  server_hooks_.room_wait = [gate] {
    std::lock_guard<std::mutex> lock(gate->mu);
    gate->open = true;
    gate->opened.notify_all();
  };
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  int answered = 0, failed = 0;
  auto done = [&](StatusOr<Message>&& r) { r.ok() ? ++answered : ++failed; };
  // The server is kept busy until the scheduler has received this many of
  // its heartbeats. A node sends at most one per interval, so the flood
  // outlasts two heartbeat timeouts, however slow the machine: a server
  // silent while busy would have been declared dead, and one that sends no
  // heartbeat while busy never gets there (the hang guard fails the test).
  constexpr int kHeartbeats = 2 * kTimeoutMs / kIntervalMs + 2;
  const int heartbeats_before = server_heartbeats_.load();
  const Deadline guard = Deadline::In(kHangGuardMs);
  uint64_t key = 1;
  while (server_heartbeats_.load() - heartbeats_before < kHeartbeats) {
    ASSERT_FALSE(guard.Expired()) << "the busy server sent "
                                  << server_heartbeats_.load() - heartbeats_before << " of "
                                  << kHeartbeats << " heartbeats";
    while (rpc.outstanding() < kInFlight) {
      std::vector<uint64_t> keys(64);
      for (auto& k : keys) k = key++;
      Message pull = Pull(std::move(keys));
      pull.meta.set_create_missing(false);  // the table does not grow
      ASSERT_TRUE(rpc.StartAsync(server_id(), std::move(pull), kHangGuardMs, done).ok());
    }
    Status s = worker_->Tick(Deadline::In(5));
    ASSERT_TRUE(s.ok()) << s;
  }
  while (rpc.outstanding() > 0) ASSERT_TRUE(worker_->Tick(Deadline::In(20)).ok());
  EXPECT_GT(answered, kInFlight);
  EXPECT_EQ(failed, 0);
  FinishJob();
  Join();
  EXPECT_TRUE(scheduler_status_.ok()) << scheduler_status_;
  EXPECT_TRUE(server_status_.ok()) << server_status_;
  // The queues filled up: the receive thread waited for room.
  EXPECT_GT(server_stats_.room_waits, 0);
}

Message Push(std::vector<uint64_t> keys, std::vector<float> grads) {
  Message m(wire::PUSH_SPARSE);
  m.payloads.push_back(Payload::FromVector(std::move(keys)));
  m.payloads.push_back(Payload::FromVector(std::move(grads)));
  return m;
}

Message DensePush(std::vector<float> grads) {
  Message m(wire::PUSH_DENSE);
  m.payloads.push_back(Payload::FromVector(std::move(grads)));
  return m;
}

// The server.nonfinite_gradients counters of the job's summary.json.
std::pair<int64_t, int64_t> NonfiniteCounts(const std::string& run_dir) {
  const std::string summary = ReadFile(run_dir + "/summary.json");
  auto count = [&](const std::string& key) -> int64_t {
    const size_t at = summary.find("\"" + key + "\": ");
    if (at == std::string::npos) return -1;
    return std::strtoll(summary.c_str() + at + key.size() + 4, nullptr, 10);
  };
  return {count("nonfinite_pushes_rejected"), count("nonfinite_rows_skipped")};
}

// Regression (hostile probe): a push of NaN gradients with the job's epoch
// was answered OK and applied, poisoning its rows for good.
TEST_F(ClusterTest, NonfiniteGradientsAreRejectedAndNothingIsApplied) {
  StartCluster(SmallJob());  // server.nonfinite_gradients: REJECT (the default)
  Rpc& rpc = worker_->rpc();
  auto before = rpc.Call(server_id(), Pull({1, 2}), kHangGuardMs);
  ASSERT_TRUE(before.ok()) << before.status();
  auto r = rpc.Call(server_id(), Push({1, 2}, {1, 1, 1, 1, 1, NAN, 1, 1}), kHangGuardMs);
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("1 of 2 rows hold non-finite gradients (first: key 2"),
            std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("nothing applied"), std::string::npos) << r.status();
  r = rpc.Call(server_id(), Push({1}, {INFINITY, 0, 0, 0}), kHangGuardMs);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  auto after = rpc.Call(server_id(), Pull({1, 2}), kHangGuardMs);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Values(after.value()), Values(before.value()));  // row 1 untouched too

  Message nan_init(wire::INIT_DENSE);
  nan_init.meta.set_dense_total(3);
  nan_init.payloads.push_back(Payload::FromVector(std::vector<float>{1, NAN, 3}));
  r = rpc.Call(server_id(), std::move(nan_init), kHangGuardMs);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  Message dense(wire::INIT_DENSE);
  dense.meta.set_dense_total(3);
  dense.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2, 3}));
  ASSERT_TRUE(rpc.Call(server_id(), std::move(dense), kHangGuardMs).ok());
  r = rpc.Call(server_id(), DensePush({0.5f, -NAN, 0.5f}), kHangGuardMs);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("dense gradient 1 of 3"), std::string::npos) << r.status();
  auto dense_values = rpc.Call(server_id(), Message(wire::PULL_DENSE), kHangGuardMs);
  ASSERT_TRUE(dense_values.ok());
  EXPECT_EQ(Values(dense_values.value()), (std::vector<float>{1, 2, 3}));
  // A finite push still applies.
  ASSERT_TRUE(rpc.Call(server_id(), Push({1}, {1, 1, 1, 1}), kHangGuardMs).ok());
  FinishJob();
  Join();
  EXPECT_EQ(NonfiniteCounts(run_dir_), (std::pair<int64_t, int64_t>{3, 0}));
}

TEST_F(ClusterTest, SkipRowsAppliesTheFiniteRowsOfAPush) {
  config::Config c = SmallJob();
  c.mutable_server()->set_nonfinite_gradients(config::ServerConfig::SKIP_ROWS);
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  auto before = rpc.Call(server_id(), Pull({1, 2, 3}), kHangGuardMs);
  ASSERT_TRUE(before.ok()) << before.status();
  const std::vector<float> v = Values(before.value());
  auto r = rpc.Call(server_id(), Push({1, 2, 3}, {1, 1, 1, 1, 0, NAN, 0, 0, -1, -1, -1, -1}),
                    kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  auto after = rpc.Call(server_id(), Pull({1, 2, 3}), kHangGuardMs);
  ASSERT_TRUE(after.ok());
  const std::vector<float> w = Values(after.value());
  const float step = 0.1f / std::sqrt(0.1f + 1.0f);  // one Adagrad step of gradient +-1
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(w[j], v[j] - step, 1e-6) << j;          // key 1
    EXPECT_EQ(w[4 + j], v[4 + j]) << j;                 // key 2: skipped
    EXPECT_NEAR(w[8 + j], v[8 + j] + step, 1e-6) << j;  // key 3
  }
  Message dense(wire::INIT_DENSE);
  dense.meta.set_dense_total(2);
  dense.payloads.push_back(Payload::FromVector(std::vector<float>{1, 2}));
  ASSERT_TRUE(rpc.Call(server_id(), std::move(dense), kHangGuardMs).ok());
  r = rpc.Call(server_id(), DensePush({0.5f, INFINITY}), kHangGuardMs);
  ASSERT_TRUE(r.ok()) << r.status();
  auto dense_values = rpc.Call(server_id(), Message(wire::PULL_DENSE), kHangGuardMs);
  ASSERT_TRUE(dense_values.ok());
  EXPECT_EQ(Values(dense_values.value()), (std::vector<float>{1, 2}));  // dropped whole
  FinishJob();
  Join();
  EXPECT_EQ(NonfiniteCounts(run_dir_), (std::pair<int64_t, int64_t>{0, 2}));
}

// Regression (hostile probe): DenseBlockOf multiplied the wire's
// dense_total before it was checked (signed overflow), and a timeout of
// 2^63 ms overflowed the deadline's clock.
TEST_F(ClusterTest, WireSizesAreCheckedBeforeArithmetic) {
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  for (int64_t total :
       std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 0,
                            std::numeric_limits<int64_t>::max(), kMaxDenseParams + 1}) {
    Message init(wire::INIT_DENSE);
    init.meta.set_dense_total(total);
    init.payloads.push_back(Payload::FromVector(std::vector<float>{1}));
    auto r = rpc.Call(server_id(), std::move(init), kHangGuardMs);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << total;
    EXPECT_NE(r.status().message().find("must be in [1, 2^40]"), std::string::npos) << r.status();
  }
  // A request whose timeout is the largest int64 is served like any other.
  Transport* raw = rpc.transport();
  Message pull = Pull({7});
  pull.meta.set_request_id(777);
  pull.meta.set_sender(rpc.self_id());
  pull.meta.set_cluster_epoch(rpc.epoch());
  pull.meta.set_timeout_ms(std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(raw->Send(server_id(), std::move(pull)).ok());
  const Deadline guard = Deadline::In(kHangGuardMs);
  bool answered = false;
  while (!answered && !guard.Expired()) {
    auto in = raw->Receive(Deadline::In(50));
    if (in.ok() && in->msg.meta.request_id() == 777) {
      EXPECT_EQ(in->msg.meta.status(), wire::OK) << in->msg.meta.status_message();
      answered = true;
    }
  }
  EXPECT_TRUE(answered);
  FinishJob();
}

// Regression (hostile probe): an exception on a shard thread (a table that
// cannot grow) reached nothing that caught it: std::terminate.
TEST_F(ClusterTest, AShardThreadFailureIsAnErrorReplyNotACrash) {
  server_hooks_.shard_serve = [](const ShardTask& task) {
    if (task.kind == ShardTask::Kind::kPullSparse && task.num_keys == 3) throw std::bad_alloc();
  };
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  auto r = rpc.Call(server_id(), Pull({1, 2, 3}), kHangGuardMs);
  ASSERT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
  EXPECT_NE(r.status().message().find("shard 0 of partition 0 failed"), std::string::npos)
      << r.status();
  EXPECT_TRUE(rpc.Call(server_id(), Pull({1, 2}), kHangGuardMs).ok());
  FinishJob();
  Join();
  EXPECT_TRUE(server_status_.ok()) << server_status_;
}

// Regression: while its queues were full the receive thread waited for the
// shards without sending heartbeats, so shards slower than the heartbeat
// timeout got a healthy server declared dead.
TEST_F(ClusterTest, AServerWaitingForRoomSendsHeartbeats) {
  config::Config c = SmallJob();
  c.mutable_cluster()->set_heartbeat_interval_ms(50);
  struct Gate {
    std::mutex mu;
    std::condition_variable changed;
    int heartbeats_at_wait = -1;  // guarded by mu
  };
  auto gate = std::make_shared<Gate>();
  std::atomic<int>* heartbeats = &server_heartbeats_;
  // The first task waits until the receive thread found the queues full and
  // the scheduler then heard 5 more heartbeats from the server.
  server_hooks_.shard_serve = [gate, heartbeats](const ShardTask&) {
    std::unique_lock<std::mutex> lock(gate->mu);
    gate->changed.wait_for(lock, std::chrono::milliseconds(kHangGuardMs),
                           [&] { return gate->heartbeats_at_wait >= 0; });
    const Deadline guard = Deadline::In(kHangGuardMs);
    while (heartbeats->load() < gate->heartbeats_at_wait + 5 && !guard.Expired()) {
      gate->changed.wait_for(lock, std::chrono::milliseconds(10));
    }
  };
  server_hooks_.room_wait = [gate, heartbeats] {
    std::lock_guard<std::mutex> lock(gate->mu);
    if (gate->heartbeats_at_wait < 0) gate->heartbeats_at_wait = heartbeats->load();
    gate->changed.notify_all();
  };
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  int answered = 0;
  const int n = ParameterServer::kMaxQueuedRequests + 20;
  for (int i = 0; i < n; ++i) {
    Message pull = Pull({static_cast<uint64_t>(i + 1)});
    ASSERT_TRUE(rpc.StartAsync(server_id(), std::move(pull), kHangGuardMs,
                               [&](StatusOr<Message>&& m) { answered += m.ok(); })
                    .ok());
  }
  const Deadline guard = Deadline::In(kHangGuardMs);
  while (rpc.outstanding() > 0 && !guard.Expired()) {
    ASSERT_TRUE(worker_->Tick(Deadline::In(20)).ok());
  }
  EXPECT_EQ(answered, n);
  {
    std::lock_guard<std::mutex> lock(gate->mu);
    ASSERT_GE(gate->heartbeats_at_wait, 0) << "the queues never filled";
    EXPECT_GE(server_heartbeats_.load(), gate->heartbeats_at_wait + 5);
  }
  FinishJob();
  Join();
  EXPECT_TRUE(server_status_.ok()) << server_status_;
}

TEST_F(ClusterTest, OversizedPullIsRefused) {
  // 20M keys of dim 4 would need 305 MiB of answer. Built before the job
  // starts: under ThreadSanitizer filling 160 MB takes seconds, during which
  // the test thread (the worker) would send no heartbeat.
  Message oversized = Pull(std::vector<uint64_t>(20 << 20, 3));
  StartCluster(SmallJob());
  auto r = worker_->rpc().Call(server_id(), std::move(oversized), kHangGuardMs);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("MiB limit"), std::string::npos) << r.status();
  EXPECT_TRUE(worker_->rpc().Call(server_id(), Pull({1}), kHangGuardMs).ok());
  FinishJob();
}

TEST_F(ClusterTest, SilentNodeAbortsTheJob) {
  config::Config c = SmallJob();
  // 30 heartbeat intervals: the idle server, which keeps heartbeating, is
  // not the one found silent even on a slow (ThreadSanitizer) machine.
  c.mutable_cluster()->set_heartbeat_timeout_ms(1500);
  StartCluster(c);
  // The worker never sends another heartbeat: the scheduler must abort the
  // job, and the server must learn it and stop with an error.
  Join();
  EXPECT_EQ(scheduler_status_.code(), StatusCode::kAborted) << scheduler_status_;
  EXPECT_NE(scheduler_status_.message().find("worker 0"), std::string::npos) << scheduler_status_;
  EXPECT_EQ(server_status_.code(), StatusCode::kAborted) << server_status_;
  // The server says why: the scheduler's reason reached it.
  EXPECT_NE(server_status_.message().find("worker 0"), std::string::npos) << server_status_;
}

TEST_F(ClusterTest, BadOptimizerSettingIsAnErrorNotACrash) {
  config::Config c = SmallJob();
  c.mutable_server()->mutable_sparse_optimizer()->mutable_adagrad()->set_initial_accumulator(0);
  c.mutable_cluster()->set_heartbeat_timeout_ms(400);
  StartCluster(c);
  Join();
  EXPECT_EQ(server_status_.code(), StatusCode::kInvalidArgument) << server_status_;
}

}  // namespace
}  // namespace mtps
