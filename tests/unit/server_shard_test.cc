// Tests of a server's shard threads (ps/server/server_shard.h) without the network:
// KeyShard spreads keys evenly and independently of their server; N shards
// serving a stream of pulls and pushes answer exactly what one SparseTable
// does; each shard holds only its own keys; every shard counts every push as
// a step; a task past its deadline is dropped by every shard alike; Stop
// serves what is queued; shard 0 owns the dense block.
#include "ps/server/server_shard.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/cluster/partition.h"

namespace mtps {
namespace {

SparseTableOptions Options(int dim) {
  SparseTableOptions o;
  o.dim = dim;
  o.init_scale = 0.05f;
  o.seed = 11;
  o.optimizer.mutable_adagrad()->set_learning_rate(0.1f);
  o.optimizer.mutable_adagrad()->set_initial_accumulator(0.2f);
  return o;
}

// N shards plus the list of tasks they finished, in finishing order.
class Shards {
 public:
  Shards(int n, const SparseTableOptions& table) {
    for (int i = 0; i < n; ++i) {
      shards_.push_back(std::make_unique<ServerShard>(i, n, table, config::DenseOptimizer(),
                                                      DenseStore::Mode::kOptimize,
                                                      [this](std::shared_ptr<ShardTask> task) {
                                                        std::lock_guard<std::mutex> lock(mu_);
                                                        done_.push_back(std::move(task));
                                                        cv_.notify_all();
                                                      }));
    }
  }

  // Submits to every shard (sparse) or shard 0 (dense), as the server does.
  void Submit(std::shared_ptr<ShardTask> task) { SubmitToShards(shards_, std::move(task)); }

  // Waits (deadline 10 s) until `count` tasks finished.
  bool WaitDone(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done_.size() >= count; });
  }
  size_t done_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_.size();
  }

  void Stop() {
    for (auto& s : shards_) s->Stop();
  }
  ServerShard& shard(int i) { return *shards_[i]; }
  int size() const { return static_cast<int>(shards_.size()); }

 private:
  std::vector<std::unique_ptr<ServerShard>> shards_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<ShardTask>> done_;
};

std::shared_ptr<ShardTask> PullTask(const std::vector<uint64_t>& keys, int dim) {
  auto t = std::make_shared<ShardTask>();
  t->kind = ShardTask::Kind::kPullSparse;
  t->deadline = Deadline::In(60000);
  t->key_copy = keys;
  t->keys = t->key_copy.data();
  t->num_keys = keys.size();
  t->create_missing = true;
  t->pull_count = keys.size() * dim;
  t->pull_values = PooledArray<float>::New(t->pull_count);
  return t;
}

std::shared_ptr<ShardTask> PushTask(const std::vector<uint64_t>& keys,
                                    const std::vector<float>& grads) {
  auto t = std::make_shared<ShardTask>();
  t->kind = ShardTask::Kind::kPushSparse;
  t->deadline = Deadline::In(60000);
  t->key_copy = keys;
  t->keys = t->key_copy.data();
  t->num_keys = keys.size();
  t->value_copy = grads;
  t->values = t->value_copy.data();
  t->num_values = grads.size();
  return t;
}

TEST(KeyShardTest, SpreadsTheKeysOfOneServerEvenly) {
  // The keys one server of 4 receives, split over 8 shards: each shard gets
  // about 1/8 of them (the shard hash is independent of the placement).
  KeyPartitioner servers(4);
  std::mt19937_64 rng(3);
  constexpr int kShards = 8;
  std::vector<int> counts(kShards, 0);
  int total = 0;
  for (int i = 0; i < 400000; ++i) {
    const uint64_t key = rng();
    if (servers.ServerOf(key) != 1) continue;
    const int s = KeyShard(key, kShards);
    ASSERT_GE(s, 0);
    ASSERT_LT(s, kShards);
    ASSERT_EQ(s, KeyShard(key, kShards));  // deterministic
    ++counts[s];
    ++total;
  }
  for (int c : counts) {
    // ~12,500 expected; 5 standard deviations is about +-530.
    EXPECT_NEAR(c, total / kShards, 600) << "total " << total;
  }
  // Small keys (dense ids, not hashes) spread too.
  std::vector<int> small(3, 0);
  for (uint64_t k = 0; k < 30000; ++k) ++small[KeyShard(k, 3)];
  for (int c : small) EXPECT_NEAR(c, 10000, 500);
  for (uint64_t k = 0; k < 1000; ++k) EXPECT_EQ(KeyShard(k, 1), 0);
}

TEST(KeyShardTest, SplitByShardGroupsKeysInOrder) {
  std::mt19937_64 rng(9);
  std::vector<uint64_t> keys(5000);
  for (auto& k : keys) k = rng() % 1500;  // with repeats
  constexpr int kShards = 5;
  std::vector<uint32_t> positions, begin;
  SplitByShard(keys.data(), keys.size(), kShards, &positions, &begin);
  ASSERT_EQ(begin.size(), static_cast<size_t>(kShards) + 1);
  EXPECT_EQ(begin.front(), 0u);
  EXPECT_EQ(begin.back(), keys.size());
  ASSERT_EQ(positions.size(), keys.size());
  std::vector<bool> seen(keys.size(), false);
  for (int s = 0; s < kShards; ++s) {
    for (uint32_t j = begin[s]; j < begin[s + 1]; ++j) {
      EXPECT_EQ(KeyShard(keys[positions[j]], kShards), s);
      if (j > begin[s]) {
        EXPECT_LT(positions[j - 1], positions[j]);  // request order kept
      }
      EXPECT_FALSE(seen[positions[j]]);
      seen[positions[j]] = true;
    }
  }
  for (bool b : seen) EXPECT_TRUE(b);
  SplitByShard(keys.data(), 0, kShards, &positions, &begin);  // no keys
  EXPECT_TRUE(positions.empty());
  EXPECT_EQ(begin, std::vector<uint32_t>(kShards + 1, 0));
}

TEST(ServerShardTest, ShardsAnswerExactlyWhatOneTableDoes) {
  constexpr int kDim = 4;
  const SparseTableOptions o = Options(kDim);
  SparseTable reference(o);
  Shards shards(4, o);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> grad(-1, 1);
  std::vector<std::shared_ptr<ShardTask>> pulls;
  std::vector<std::vector<float>> expected;
  size_t submitted = 0;
  for (int round = 0; round < 60; ++round) {
    // Keys from a small universe, so rows are hit repeatedly, with repeats
    // inside a request.
    std::vector<uint64_t> keys(1 + rng() % 300);
    for (auto& k : keys) k = rng() % 2000;
    if (round % 2 == 0) {
      std::vector<float> g(keys.size() * kDim);
      for (auto& x : g) x = grad(rng);
      reference.Push(keys.data(), keys.size(), g.data());
      shards.Submit(PushTask(keys, g));
    } else {
      std::vector<float> want(keys.size() * kDim);
      reference.Pull(keys.data(), keys.size(), true, want.data());
      expected.push_back(want);
      pulls.push_back(PullTask(keys, kDim));
      shards.Submit(pulls.back());
    }
    ++submitted;
  }
  ASSERT_TRUE(shards.WaitDone(submitted));
  for (size_t i = 0; i < pulls.size(); ++i) {
    ASSERT_FALSE(pulls[i]->expired());
    const std::vector<float> got(pulls[i]->pull_values.get(),
                                 pulls[i]->pull_values.get() + pulls[i]->pull_count);
    ASSERT_EQ(got, expected[i]) << "pull " << i;  // the same float operations, in order
  }
  shards.Stop();
  size_t rows = 0;
  for (int s = 0; s < shards.size(); ++s) {
    const SparseTable& t = shards.shard(s).table();
    rows += t.size();
    EXPECT_GT(t.size(), 0u) << "shard " << s;
    // Every push was a step of every shard, even one with none of its keys.
    EXPECT_EQ(t.steps(), reference.steps()) << "shard " << s;
    for (uint64_t k = 0; k < 2000; ++k) {
      if (t.Contains(k)) {
        EXPECT_EQ(KeyShard(k, shards.size()), s) << "key " << k;
      }
    }
  }
  EXPECT_EQ(rows, reference.size());
}

TEST(ServerShardTest, ExpiredTaskIsDroppedByEveryShard) {
  constexpr int kDim = 2;
  Shards shards(3, Options(kDim));
  std::vector<uint64_t> keys;
  for (uint64_t k = 1; k <= 100; ++k) keys.push_back(k);
  auto push = PushTask(keys, std::vector<float>(keys.size() * kDim, 1.0f));
  push->deadline = Deadline::In(0);  // already past when a shard starts it
  shards.Submit(push);
  auto pull = PullTask(keys, kDim);
  pull->create_missing = false;
  shards.Submit(pull);
  ASSERT_TRUE(shards.WaitDone(2));
  EXPECT_TRUE(push->expired());
  EXPECT_FALSE(pull->expired());
  EXPECT_EQ(push->remaining.load(), 0);
  // The push changed nothing: the pull reads initial values.
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int j = 0; j < kDim; ++j) {
      EXPECT_EQ(pull->pull_values[i * kDim + j], InitialValue(11, keys[i], j, 0.05f));
    }
  }
  shards.Stop();
  for (int s = 0; s < shards.size(); ++s) {
    EXPECT_EQ(shards.shard(s).table().size(), 0u);
    EXPECT_EQ(shards.shard(s).table().steps(), 0);
  }
}

TEST(ServerShardTest, ASmallTaskIsServedHereOnlyWhileTheShardIsIdle) {
  constexpr int kDim = 4;
  const SparseTableOptions o = Options(kDim);
  SparseTable reference(o);
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false, held = false;  // guarded by mu
  std::vector<std::shared_ptr<ShardTask>> done;
  ServerShard shard(0, 1, o, config::DenseOptimizer(), DenseStore::Mode::kOptimize,
                    [&](std::shared_ptr<ShardTask> task) {
                      std::unique_lock<std::mutex> lock(mu);
                      done.push_back(std::move(task));
                      if (hold) {  // the shard thread stays busy until released
                        held = true;
                        cv.notify_all();
                        cv.wait_for(lock, std::chrono::seconds(10), [&] { return !hold; });
                      }
                      cv.notify_all();
                    });
  std::vector<uint64_t> keys(300);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 31;
  auto pulled = [&](const std::shared_ptr<ShardTask>& t) {
    return std::vector<float>(t->pull_values.get(), t->pull_values.get() + t->pull_count);
  };

  // A request that would grow the index (the empty table's 16 buckets
  // cannot take 300 keys) is left to the shard thread.
  std::vector<float> scratch(keys.size() * kDim);
  reference.Pull(keys.data(), keys.size(), true, scratch.data());
  auto task = PullTask(keys, kDim);
  task->remaining = 1;
  EXPECT_FALSE(shard.TryServeHere(task));
  EXPECT_EQ(task->remaining.load(), 1);  // untouched
  shard.Submit(std::move(task));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done.size() == 1; }));
  }

  // Idle, and the rows in place: served on this thread and finished when
  // TryServeHere returns, without the done callback (the caller answers
  // it). The shard thread is idle soon after its done callback returned.
  // (20 keys: 300 + 20 rows fit the 512 buckets' growth threshold, 358.)
  const std::vector<uint64_t> small(keys.begin(), keys.begin() + 20);
  std::vector<float> want1(small.size() * kDim);
  reference.Pull(small.data(), small.size(), true, want1.data());
  auto first = PullTask(small, kDim);
  first->remaining = 1;
  task = first;
  bool here = false;
  const Deadline idle = Deadline::In(10000);
  while (!(here = shard.TryServeHere(task)) && !idle.Expired()) std::this_thread::yield();
  ASSERT_TRUE(here);
  EXPECT_EQ(task, first);
  EXPECT_EQ(first->remaining.load(), 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(done.size(), 1u);  // only the shard thread's
  }
  EXPECT_EQ(pulled(first), want1);

  // Busy: while the shard thread holds a push, a pull is not served here; it
  // queues behind the push and sees it.
  std::vector<float> g(keys.size() * kDim, 0.5f);
  reference.Push(keys.data(), keys.size(), g.data());
  {
    std::lock_guard<std::mutex> lock(mu);
    hold = true;
  }
  auto push = PushTask(keys, g);
  push->remaining = 1;
  shard.Submit(push);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return held; }));
  }
  std::vector<float> want2(small.size() * kDim);
  reference.Pull(small.data(), small.size(), true, want2.data());
  auto second = PullTask(small, kDim);
  second->remaining = 1;
  task = second;
  EXPECT_FALSE(shard.TryServeHere(task));
  ASSERT_EQ(task, second);  // left to the caller
  shard.Submit(std::move(task));
  {
    std::unique_lock<std::mutex> lock(mu);
    hold = false;
    cv.notify_all();
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done.size() == 3; }));
  }
  EXPECT_EQ(pulled(second), want2);
  EXPECT_NE(want2, want1);
  shard.Stop();
  EXPECT_EQ(shard.table().steps(), reference.steps());
  EXPECT_EQ(shard.table().size(), reference.size());

  // Never with several shards: the task is split over them.
  ServerShard one_of_two(0, 2, o, config::DenseOptimizer(), DenseStore::Mode::kOptimize,
                         [](std::shared_ptr<ShardTask>) {});
  task = PullTask(keys, kDim);
  EXPECT_FALSE(one_of_two.TryServeHere(task));
  EXPECT_NE(task, nullptr);
}

TEST(ServerShardTest, StopServesWhatIsQueued) {
  constexpr int kDim = 8;
  Shards shards(2, Options(kDim));
  std::vector<uint64_t> keys(5000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  constexpr int kTasks = 40;
  for (int i = 0; i < kTasks; ++i) shards.Submit(PullTask(keys, kDim));
  shards.Stop();
  EXPECT_EQ(shards.done_count(), static_cast<size_t>(kTasks));
  EXPECT_EQ(shards.shard(0).table().size() + shards.shard(1).table().size(), keys.size());
}

TEST(ServerShardTest, ShardZeroOwnsTheDenseBlock) {
  Shards shards(3, Options(2));
  auto init = std::make_shared<ShardTask>();
  init->kind = ShardTask::Kind::kInitDense;
  init->deadline = Deadline::In(60000);
  init->value_copy = {1, 2, 3};
  init->values = init->value_copy.data();
  init->num_values = 3;
  auto pull = std::make_shared<ShardTask>();
  pull->kind = ShardTask::Kind::kPullDense;
  pull->deadline = Deadline::In(60000);
  auto bad_push = std::make_shared<ShardTask>();
  bad_push->kind = ShardTask::Kind::kPushDense;
  bad_push->deadline = Deadline::In(60000);
  bad_push->value_copy = {1, 2};  // the block has 3
  bad_push->values = bad_push->value_copy.data();
  bad_push->num_values = 2;
  shards.Submit(init);
  shards.Submit(pull);
  shards.Submit(bad_push);
  ASSERT_TRUE(shards.WaitDone(3));
  EXPECT_TRUE(init->status.ok()) << init->status;
  EXPECT_EQ(pull->dense_values, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(bad_push->status.code(), StatusCode::kInvalidArgument) << bad_push->status;
  shards.Stop();
  ASSERT_NE(shards.shard(0).dense(), nullptr);
  EXPECT_EQ(shards.shard(0).dense()->size(), 3u);
  EXPECT_EQ(shards.shard(1).dense(), nullptr);
}

}  // namespace
}  // namespace mtps
