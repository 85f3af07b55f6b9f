// Tests of KvClient's slicing (worker/client/kv_client.h) against fake
// servers over real ZeroMQ sockets: each key goes to the server
// KeyPartitioner names, pulled rows land at their key's place however the
// keys split, and each pushed gradient row reaches its key's server beside
// its key. Dims 8 and 16 take the client's fixed-size row copies, dim 5 the
// general one; one server takes the unsliced path.
#include "worker/client/kv_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "common/net/zmq_transport.h"

namespace mtps {
namespace {

constexpr int64_t kHangGuardMs = 30000;

// Row j of key k as the fake servers answer it.
float RowValue(uint64_t key, int j) { return static_cast<float>(key % 100003) + 0.001f * j; }

// A fake server: answers PULL_SPARSE with RowValue and records every pushed
// (key, gradient row) and every key it was sent.
class FakeServer {
 public:
  FakeServer(zmq::context_t* ctx, int node_id, int dim)
      : transport_(ctx), rpc_(&transport_, node_id), dim_(static_cast<size_t>(dim)) {
    auto port = transport_.Bind("127.0.0.1", 0);
    CHECK(port.ok()) << port.status();
    port_ = port.value();
    rpc_.set_request_handler([this](Incoming&& in) { Handle(in); });
    thread_ = std::thread([this] {
      while (!stop_) rpc_.Poll(Deadline::In(5));
    });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<uint64_t> keys_seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_seen_;
  }
  std::map<uint64_t, std::vector<float>> pushed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pushed_;
  }

 private:
  void Handle(const Incoming& in) {
    const Message& m = in.msg;
    std::vector<uint64_t> key_scratch;
    std::vector<float> value_scratch;
    const size_t n = m.payloads.at(0).count();
    const uint64_t* keys = m.payloads[0].Data<uint64_t>(&key_scratch);
    std::lock_guard<std::mutex> lock(mu_);
    keys_seen_.insert(keys_seen_.end(), keys, keys + n);
    Message reply;
    if (m.meta.op() == wire::PULL_SPARSE) {
      std::vector<float> rows(n * dim_);
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < dim_; ++j)
          rows[i * dim_ + j] = RowValue(keys[i], static_cast<int>(j));
      }
      reply.payloads.push_back(Payload::FromVector(std::move(rows)));
    } else if (m.meta.op() == wire::PUSH_SPARSE) {
      const float* g = m.payloads.at(1).Data<float>(&value_scratch);
      CHECK_EQ(m.payloads[1].count(), n * dim_);
      for (size_t i = 0; i < n; ++i) pushed_[keys[i]].assign(g + i * dim_, g + (i + 1) * dim_);
    }
    rpc_.Reply(in, std::move(reply));
  }

  ZmqTransport transport_;
  Rpc rpc_;
  size_t dim_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::vector<uint64_t> keys_seen_;                // guarded by mu_
  std::map<uint64_t, std::vector<float>> pushed_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Distinct random keys, unsorted (as a batch's unique keys are).
std::vector<uint64_t> RandomKeys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<uint64_t, bool> seen;
  std::vector<uint64_t> keys;
  while (keys.size() < n) {
    const uint64_t k = rng();
    if (seen.emplace(k, true).second) keys.push_back(k);
  }
  return keys;
}

void CheckPullAndPush(int num_servers, int dim) {
  SCOPED_TRACE("servers " + std::to_string(num_servers) + " dim " + std::to_string(dim));
  zmq::context_t ctx(1);
  std::vector<std::unique_ptr<FakeServer>> servers;
  ZmqTransport transport(&ctx);
  std::vector<int> ids;
  for (int s = 0; s < num_servers; ++s) {
    servers.push_back(std::make_unique<FakeServer>(&ctx, 10 + s, dim));
    ASSERT_TRUE(
        transport.Connect(10 + s, "tcp://127.0.0.1:" + std::to_string(servers.back()->port()))
            .ok());
    ids.push_back(10 + s);
  }
  Rpc rpc(&transport, 7, /*incarnation=*/0);
  KvClientOptions o;
  o.dim = dim;
  o.request_timeout_ms = kHangGuardMs;
  KvClient kv(&rpc, ids, o);
  const KeyPartitioner partitioner(num_servers);
  const size_t d = static_cast<size_t>(dim);

  // Two pulls of different sizes in flight at once (prefetch), then their rows.
  const std::vector<uint64_t> a = RandomKeys(3000, 1), b = RandomKeys(700, 2);
  PendingPull pa, pb;
  ASSERT_TRUE(kv.StartPull(a, true, false, &pa).ok());
  ASSERT_TRUE(kv.StartPull(b, true, false, &pb).ok());
  std::vector<float> ea(a.size() * d, -1), eb(b.size() * d, -1);
  ASSERT_TRUE(kv.FinishPull(&pa, ea.data(), nullptr).ok());
  ASSERT_TRUE(kv.FinishPull(&pb, eb.data(), nullptr).ok());
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < d; ++j) {
      ASSERT_EQ(ea[i * d + j], RowValue(a[i], static_cast<int>(j))) << "key " << i << " of a";
    }
  }
  for (size_t i = 0; i < b.size(); ++i) {
    for (size_t j = 0; j < d; ++j) {
      ASSERT_EQ(eb[i * d + j], RowValue(b[i], static_cast<int>(j))) << "key " << i << " of b";
    }
  }

  // A push: each key's own gradient row reaches its server.
  std::vector<float> grads(a.size() * d);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i);
  ASSERT_TRUE(kv.Push(a, grads.data(), nullptr).ok());
  ASSERT_TRUE(kv.Flush().ok());
  size_t pushed = 0;
  for (int s = 0; s < num_servers; ++s) {
    for (uint64_t k : servers[static_cast<size_t>(s)]->keys_seen()) {
      ASSERT_EQ(partitioner.ServerOf(k), s) << "key " << k;
    }
    for (const auto& [key, row] : servers[static_cast<size_t>(s)]->pushed()) {
      const size_t i = static_cast<size_t>(std::find(a.begin(), a.end(), key) - a.begin());
      ASSERT_LT(i, a.size());
      ASSERT_EQ(row, std::vector<float>(grads.begin() + i * d, grads.begin() + (i + 1) * d));
      ++pushed;
    }
  }
  EXPECT_EQ(pushed, a.size());
}

TEST(KvClientTest, OneServerGetsEveryKeyInOrder) {
  CheckPullAndPush(1, 16);
  CheckPullAndPush(1, 5);
}

TEST(KvClientTest, KeysSplitOverServersLandInTheirPlaces) {
  for (int dim : {8, 16, 5}) CheckPullAndPush(3, dim);
}

}  // namespace
}  // namespace mtps
