// A parameter server's shard threads (see ps/server/server_shard.h).
#include "ps/server/server_shard.h"

#include <pthread.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <string>

#include "common/base/hash.h"
#include "ps/server/server_config.h"

namespace mtps {
namespace {
// Salts the shard hash so it is independent of Mix64(key), which picks the
// key's bucket in the SparseTable index.
constexpr uint64_t kShardSalt = 0x5851f42d4c957f2dULL;
}  // namespace

int KeyShard(uint64_t key, int num_shards) {
  // Multiply-shift onto [0, num_shards) from the high 32 bits of the mix.
  const uint64_t h = Mix64(key ^ kShardSalt) >> 32;
  return static_cast<int>((h * static_cast<uint64_t>(num_shards)) >> 32);
}

SparseTableOptions ShardTableOptions(const config::Config& config) {
  SparseTableOptions o;
  o.dim = config.model().embedding_dim();
  o.init_scale = config.server().embedding_init_scale();
  o.seed = config.train().seed();
  const config::ServerConfig& server = config.server();
  o.optimizer = server.sparse_optimizer();
  o.admission_min_count = server.admission_min_count();
  o.evict_after_steps = server.evict_after_steps();
  const int64_t shards = std::max(1, server.shard_threads());
  // Rounded up without overflow (max_rows + shards - 1 overflows near
  // 2^63). A negative cap stays negative, so ValidateSparseTableOptions
  // names it instead of its rounding to 0 ("no cap").
  const int64_t max_rows = server.max_rows();
  o.max_rows = max_rows <= 0 ? max_rows : (max_rows - 1) / shards + 1;
  int log2_shards = 0;
  while ((int64_t{1} << log2_shards) < shards) ++log2_shards;
  o.admission_sketch_width_log2 = std::max(12, 20 - log2_shards);
  return o;
}

ServerShard::ServerShard(int index, int num_shards, const SparseTableOptions& table,
                         const config::DenseOptimizer& dense, DenseStore::Mode dense_mode,
                         DoneCallback done, PushWindow* window, const ServeHook* serve_hook)
    : index_(index),
      num_shards_(num_shards),
      table_(table),
      dense_(index == 0 ? std::make_unique<DenseStore>(dense, dense_mode) : nullptr),
      window_(index == 0 ? window : nullptr),
      done_(std::move(done)),
      serve_hook_(serve_hook) {
  CHECK(index >= 0 && index < num_shards) << index << " of " << num_shards;
  thread_ = std::thread([this] { Loop(); });
}

ServerShard::~ServerShard() { Stop(); }

void ServerShard::Submit(std::shared_ptr<ShardTask> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    CHECK(!stopping_) << "Submit after Stop";
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void ServerShard::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void ServerShard::CheckStopped() const {
  CHECK(!thread_.joinable()) << "ServerShard " << index_
                             << ": table() or dense() called while its thread runs (call Stop)";
}

void ServerShard::Loop() {
  // Named for top, perf and ps_bench's CPU accounting (at most 15 characters).
  const std::string name = "ps-shard-" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.c_str());
  for (;;) {
    std::shared_ptr<ShardTask> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      thread_busy_ = false;
      // Not while TryServeHere serves a task: the rows are its until then.
      wake_.wait(lock, [this] { return !serving_here_ && (stopping_ || !queue_.empty()); });
      if (queue_.empty()) return;  // stopping, and everything queued is served
      task = std::move(queue_.front());
      queue_.pop_front();
      thread_busy_ = true;
    }
    Run(std::move(task), /*here=*/false);
  }
}

bool ServerShard::TryServeHere(std::shared_ptr<ShardTask>& task) {
  if (num_shards_ != 1 || !task->sparse() || (serve_hook_ != nullptr && *serve_hook_)) {
    return false;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || thread_busy_ || serving_here_ || !queue_.empty()) return false;
    serving_here_ = true;
  }
  // The mutex orders this thread's use of the rows after the shard
  // thread's last task, and (below) before its next one.
  const bool bounded =
      table_.BoundedFor(task->num_keys, task->kind == ShardTask::Kind::kPushSparse);
  if (bounded) CHECK(Run(task, /*here=*/true)) << "a one-shard task finished by its shard";
  bool waited;
  {
    std::lock_guard<std::mutex> lock(mu_);
    serving_here_ = false;
    waited = stopping_ || !queue_.empty();
  }
  // A task Submitted meanwhile (or Stop) waited for this one; with none the
  // shard thread stays asleep.
  if (waited) wake_.notify_one();
  return bounded;
}

bool ServerShard::Run(std::shared_ptr<ShardTask> task, bool here) {
  int verdict = task->verdict.load(std::memory_order_acquire);
  if (verdict == ShardTask::kUndecided) {
    const int mine = task->deadline.Expired() ? ShardTask::kExpired : ShardTask::kServe;
    // Whoever decides first decides for every shard.
    if (task->verdict.compare_exchange_strong(verdict, mine, std::memory_order_acq_rel)) {
      verdict = mine;
    }
  }
  if (verdict == ShardTask::kServe) {
    ServeCatching(*task);
    rows_.store(static_cast<int64_t>(table_.size()), std::memory_order_relaxed);
    // Shard 0 serves every task; a dense push it refused changed nothing.
    if (window_ != nullptr && task->record_push && task->status.ok()) {
      window_->Applied(task->push_key);
    }
  }
  if (task->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return false;
  if (!here) done_(std::move(task));
  return true;
}

void SplitByShard(const uint64_t* keys, size_t n, int num_shards, std::vector<uint32_t>* positions,
                  std::vector<uint32_t>* begin) {
  CHECK(num_shards >= 1 && num_shards <= kMaxShardThreads) << num_shards;
  CHECK_LE(n, size_t{std::numeric_limits<uint32_t>::max()});
  std::vector<uint8_t> shard(n);
  begin->assign(static_cast<size_t>(num_shards) + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    shard[i] = static_cast<uint8_t>(KeyShard(keys[i], num_shards));
    ++(*begin)[shard[i] + 1];
  }
  for (int s = 0; s < num_shards; ++s) (*begin)[s + 1] += (*begin)[s];
  positions->resize(n);
  std::vector<uint32_t> next(begin->begin(), begin->end() - 1);
  for (size_t i = 0; i < n; ++i) (*positions)[next[shard[i]]++] = static_cast<uint32_t>(i);
}

void SubmitToShards(const std::vector<std::unique_ptr<ServerShard>>& shards,
                    std::shared_ptr<ShardTask> task) {
  const int n = static_cast<int>(shards.size());
  if (task->whole_shard()) {
    task->remaining.store(n, std::memory_order_relaxed);
    for (int i = 0; i + 1 < n; ++i) shards[i]->Submit(task);
    shards.back()->Submit(std::move(task));
    return;
  }
  if (!task->sparse()) {
    // The dense block lives on shard 0.
    task->remaining.store(1, std::memory_order_relaxed);
    shards[0]->Submit(std::move(task));
    return;
  }
  if (n > 1) SplitByShard(task->keys, task->num_keys, n, &task->positions, &task->shard_begin);
  task->remaining.store(n, std::memory_order_relaxed);
  for (int i = 0; i + 1 < n; ++i) shards[i]->Submit(task);
  shards.back()->Submit(std::move(task));
}

void ServerShard::ServeCatching(ShardTask& task) {
  // Nothing on a shard thread may end the process for one request: a table
  // that cannot grow (out of memory, or past its 2^32 - 2 row index) fails
  // this request with an error reply, and the rows already served stay.
  try {
    if (serve_hook_ != nullptr && *serve_hook_) (*serve_hook_)(task);
    Serve(task);
  } catch (const std::exception& e) {
    const SparseTable& t = table_;
    Status failure = Status::Unavailable(
        "shard " + std::to_string(index_) + " of partition " + std::to_string(task.partition) +
        " failed (its table holds " + std::to_string(t.size()) + " rows of dim " +
        std::to_string(t.dim()) + "; server.max_rows caps it): " + e.what());
    LOG(ERROR) << failure;
    std::lock_guard<std::mutex> lock(task.failure_mu);
    if (task.failure.ok()) task.failure = std::move(failure);
  }
}

void ServerShard::Serve(ShardTask& task) {
  // One shard: every key is its own and the task carries no split.
  const bool all = num_shards_ == 1;
  const bool sparse = task.sparse();
  if (!all && sparse) {
    CHECK_EQ(task.shard_begin.size(), static_cast<size_t>(num_shards_) + 1)
        << "a sparse task for " << num_shards_ << " shards must be split (SplitByShard)";
  }
  const uint32_t* sel = all || !sparse ? nullptr : task.positions.data() + task.shard_begin[index_];
  const size_t m =
      all || !sparse ? task.num_keys : task.shard_begin[index_ + 1] - task.shard_begin[index_];
  switch (task.kind) {
    case ShardTask::Kind::kPullSparse:
      table_.PullSelected(task.keys, sel, m, task.create_missing, task.pull_values.get());
      break;
    case ShardTask::Kind::kPushSparse:
      table_.PushSelected(task.keys, sel, m, task.values);
      break;
    case ShardTask::Kind::kPullDense:
      if (!dense_->initialized()) {
        task.status =
            Status::Unavailable("dense parameters are not initialised yet (no INIT_DENSE)");
      } else {
        task.dense_values.assign(dense_->values(), dense_->values() + dense_->size());
      }
      break;
    case ShardTask::Kind::kPushDense:
      if (task.skip_dense) break;
      task.status = dense_->Push(task.values, task.num_values);
      break;
    case ShardTask::Kind::kInitDense:
      if (!dense_->Init(task.values, task.num_values)) {
        LOG(INFO) << "ignoring a repeated INIT_DENSE from node " << task.request.msg.meta.sender();
      }
      break;
    case ShardTask::Kind::kCopy:
      task.snapshots[static_cast<size_t>(index_)] = table_.Snapshot();
      if (dense_ != nullptr) task.dense_bytes = dense_->Serialize();
      if (window_ != nullptr) task.window_bytes = window_->Serialize();
      break;
    case ShardTask::Kind::kSnapshot:
      task.snapshots[static_cast<size_t>(index_)] =
          task.delta ? table_.DeltaSnapshot() : table_.Snapshot();
      table_.StartDelta();  // the next delta is against this cut
      if (dense_ != nullptr) task.dense_bytes = dense_->Serialize();
      if (window_ != nullptr) task.window_bytes = window_->Serialize();
      break;
    case ShardTask::Kind::kRestore: {
      const size_t i = static_cast<size_t>(index_);
      const std::string& data = task.restore_sparse[i];
      Status s = table_.Restore(data.data(), data.size(), task.restore_names[i]);
      for (size_t d = 0;
           s.ok() && i < task.restore_deltas.size() && d < task.restore_deltas[i].size(); ++d) {
        const std::string& delta = task.restore_deltas[i][d];
        s = table_.ApplyDelta(delta.data(), delta.size(), task.restore_delta_names[i][d]);
      }
      if (s.ok() && dense_ != nullptr) {
        s = dense_->Restore(task.dense_bytes.data(), task.dense_bytes.size(), task.dense_name);
      }
      if (s.ok() && window_ != nullptr && !task.window_bytes.empty()) {
        s = window_->Restore(task.window_bytes, task.window_name);
      }
      task.shard_status[i] = s;
      break;
    }
  }
}

}  // namespace mtps
