// A real scheduler and parameter server on their own threads, over ZeroMQ on
// loopback (port 0), driven by a worker-role member from the test: the
// registration handshake, pulls and pushes, rejection of bad requests without
// harm to the server, the end of a job, and abort on a silent node.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <zmq_addon.hpp>

#include "common/cluster/cluster_member.h"
#include "common/net/zmq_transport.h"
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

config::Config SmallJob() {
  config::Config c;
  c.mutable_model()->set_embedding_dim(4);
  c.mutable_model()->mutable_mmoe();
  c.mutable_train()->set_seed(9);
  c.mutable_server()->set_embedding_init_scale(0.5f);
  c.mutable_server()->mutable_sparse_optimizer()->mutable_adagrad()->set_learning_rate(0.1f);
  c.mutable_cluster()->set_heartbeat_interval_ms(50);
  c.mutable_cluster()->set_heartbeat_timeout_ms(1500);
  c.mutable_cluster()->set_register_timeout_ms(5000);
  c.mutable_cluster()->set_request_timeout_ms(3000);
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
    scheduler_ = std::make_unique<Scheduler>(std::make_unique<ZmqTransport>(&ctx_), o);
    ASSERT_TRUE(scheduler_->Start().ok());
    endpoint_ = "tcp://127.0.0.1:" + std::to_string(scheduler_->port());
    scheduler_thread_ = std::thread([this] { scheduler_status_ = scheduler_->Run(); });
    server_thread_ = std::thread([this] {
      ClusterMember member(std::make_unique<ZmqTransport>(&ctx_), Options(wire::SERVER));
      server_status_ = member.Join();
      if (!server_status_.ok()) return;
      auto server = ParameterServer::Create(&member);
      server_status_ = server.ok() ? server.value()->Run() : server.status();
      if (server.ok()) server_stats_ = server.value()->stats();
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
    o.register_timeout_ms = 5000;
    return o;
  }

  // Finishes the job the way a worker does: evaluation report, end barrier.
  void FinishJob() {
    Message report(wire::EVAL_REPORT);
    report.meta.mutable_eval_report()->add_tasks("t");
    report.meta.mutable_eval_report()->set_train_examples(4);
    report.payloads.push_back(Payload::FromVector(std::vector<float>{0.9f, 0.1f, 0.8f, 0.3f}));
    report.payloads.push_back(Payload::FromVector(std::vector<float>{1, 0, 1, 0}));
    auto r = worker_->rpc().Call(kSchedulerNodeId, std::move(report), 3000);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(worker_->Barrier("start", 1).ok());
    ASSERT_TRUE(worker_->Barrier("trained", 1).ok());
    Status s = worker_->Barrier("end", 1);
    ASSERT_TRUE(s.ok()) << s;
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

  zmq::context_t ctx_{1};
  std::string run_dir_;
  std::string endpoint_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<ClusterMember> worker_;
  std::thread scheduler_thread_, server_thread_;
  Status scheduler_status_, server_status_;
  ParameterServer::Stats server_stats_;  // after the server's Run
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
  EXPECT_NE(summary.find("\"t\": {\"auc\": 1,"), std::string::npos) << summary;
}

TEST_F(ClusterTest, PullAndPushFollowInitialValueAndAdagrad) {
  StartCluster(SmallJob());
  Rpc& rpc = worker_->rpc();
  auto pulled = rpc.Call(server_id(), Pull({5, 0}), 3000);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::vector<float> v = Values(pulled.value());
  ASSERT_EQ(v.size(), 8u);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(v[j], InitialValue(9, 5, j, 0.5f));

  Message push(wire::PUSH_SPARSE);
  push.payloads.push_back(Payload::FromVector(std::vector<uint64_t>{5}));
  push.payloads.push_back(Payload::FromVector(std::vector<float>{1, -1, 0.5f, 0}));
  ASSERT_TRUE(rpc.Call(server_id(), std::move(push), 3000).ok());
  auto after = rpc.Call(server_id(), Pull({5}), 3000);
  ASSERT_TRUE(after.ok());
  std::vector<float> w = Values(after.value());
  const float g[4] = {1, -1, 0.5f, 0};
  for (int j = 0; j < 4; ++j) {
    float acc = 0.1f + g[j] * g[j];  // default initial_accumulator 0.1
    EXPECT_NEAR(w[j], v[j] - 0.1f * g[j] / std::sqrt(acc), 1e-6) << j;
  }
  FinishJob();
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
    ASSERT_TRUE(rpc.StartAsync(server_id(), std::move(push), 3000,
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
    ASSERT_TRUE(rpc.StartAsync(server_id(), Pull(std::move(keys)), 3000,
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
    auto r = rpc.Call(server_id(), std::move(m), 3000);
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
  ASSERT_TRUE(rpc.Call(server_id(), std::move(dense), 3000).ok());
  Message short_grad(wire::PUSH_DENSE);
  short_grad.payloads.push_back(Payload::FromVector(std::vector<float>{1}));
  expect_rejected(std::move(short_grad), StatusCode::kInvalidArgument, "3");

  uint64_t epoch = rpc.epoch();
  rpc.set_epoch(epoch + 1);
  expect_rejected(Pull({1}), StatusCode::kStaleEpoch, "epoch");
  rpc.set_epoch(epoch);

  // A raw peer sends a request without a deadline.
  std::string endpoint;
  for (const auto& n : worker_->nodes()) {
    if (n.role() == wire::SERVER) endpoint = "tcp://" + n.host() + ":" + std::to_string(n.port());
  }
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.set(zmq::sockopt::rcvtimeo, 3000);
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
  auto pulled = rpc.Call(server_id(), Pull({1, 2}), 3000);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::vector<float> v = Values(pulled.value());
  EXPECT_EQ(v[0], InitialValue(9, 1, 0, 0.5f));
  EXPECT_EQ(v[4], InitialValue(9, 2, 0, 0.5f));
  auto dense_values = rpc.Call(server_id(), Message(wire::PULL_DENSE), 3000);
  ASSERT_TRUE(dense_values.ok());
  EXPECT_EQ(Values(dense_values.value()), (std::vector<float>{1, 2, 3}));
  FinishJob();
}

// Regression: a server whose request queue never emptied stopped sending
// heartbeats, and the scheduler aborted a healthy job.
TEST_F(ClusterTest, BusyServerKeepsTheJobAlive) {
  config::Config c = SmallJob();
  c.mutable_cluster()->set_heartbeat_timeout_ms(600);
  // Two shard threads; more requests in flight (300) than the server queues
  // (kMaxQueuedRequests), so its receive thread also waits for room.
  c.mutable_server()->set_shard_threads(2);
  static_assert(ParameterServer::kMaxQueuedRequests < 300);
  StartCluster(c);
  Rpc& rpc = worker_->rpc();
  int answered = 0, failed = 0;
  auto done = [&](StatusOr<Message>&& r) { r.ok() ? ++answered : ++failed; };
  Deadline until = Deadline::In(2000);  // more than three heartbeat timeouts
  uint64_t key = 1;
  while (!until.Expired()) {
    while (rpc.outstanding() < 300) {
      std::vector<uint64_t> keys(64);
      for (auto& k : keys) k = key++;
      ASSERT_TRUE(rpc.StartAsync(server_id(), Pull(std::move(keys)), 3000, done).ok());
    }
    ASSERT_TRUE(worker_->Tick(Deadline::In(5)).ok());
  }
  while (rpc.outstanding() > 0) ASSERT_TRUE(worker_->Tick(Deadline::In(20)).ok());
  EXPECT_GT(answered, 300);
  EXPECT_EQ(failed, 0);
  FinishJob();
  Join();
  EXPECT_TRUE(scheduler_status_.ok()) << scheduler_status_;
  EXPECT_TRUE(server_status_.ok()) << server_status_;
}

TEST_F(ClusterTest, OversizedPullIsRefused) {
  StartCluster(SmallJob());
  // 20M keys of dim 4 would need 305 MiB of answer.
  auto r = worker_->rpc().Call(server_id(), Pull(std::vector<uint64_t>(20 << 20, 3)), 10000);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
  EXPECT_NE(r.status().message().find("MiB limit"), std::string::npos) << r.status();
  EXPECT_TRUE(worker_->rpc().Call(server_id(), Pull({1}), 3000).ok());
  FinishJob();
}

TEST_F(ClusterTest, SilentNodeAbortsTheJob) {
  config::Config c = SmallJob();
  c.mutable_cluster()->set_heartbeat_timeout_ms(400);
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
