// ServerShard: one shard thread of a parameter server and the rows it owns.
//
// A server splits its keys over N shard threads by KeyShard, a hash of the
// key independent of the key's server (common/cluster/partition.h) and of the
// table's bucket hash. Each ServerShard runs one thread that owns one
// SparseTable (and shard 0 also the server's dense block): it is the only
// thread that touches those rows, so they need no locks.
//
// The server's receive thread validates a request, wraps it in a ShardTask
// and, with several shards, splits its keys by shard (SplitByShard: one hash
// per key, instead of every shard hashing every key to find its own); then
// it submits the same task to every shard it concerns: all
// shards for sparse pulls and pushes (every shard counts every push as a
// step, so their eviction clocks agree), shard 0 alone for dense requests.
// Each shard serves its own keys of the request in place: pull answers go
// straight into the task's answer array at the keys' positions, gradients
// are read where they arrived. The shard that finishes a task last hands it
// to the `done` callback (on its own thread), which gives it back to the
// receive thread for the reply.
//
// Order: each shard serves its queue first in, first out, so requests reach
// every shard in the order the receive thread submitted them; a push that
// was acknowledged before a pull was sent is visible to that pull.
//
// Deadlines: a task carries its request's deadline. The first shard to start
// a task decides, once for all shards, whether it is still wanted; a task
// that waited past its deadline is answered DeadlineExceeded and changes
// nothing (all or nothing, never half a push).
#ifndef MTPS_PS_SERVER_SERVER_SHARD_H_
#define MTPS_PS_SERVER_SERVER_SHARD_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/array_pool.h"
#include "common/net/transport.h"
#include "ps/server/push_window.h"
#include "ps/table/dense_store.h"
#include "ps/table/sparse_table.h"

namespace mtps {

// The shard (0..num_shards) of `key` within its server.
int KeyShard(uint64_t key, int num_shards);

// Splits keys[0..n) by KeyShard, keeping their order within each shard:
// shard s's keys are at positions[(*begin)[s] .. (*begin)[s + 1]) of keys.
// One hash per key, on the receive thread (rather than every shard hashing
// every key to find its own). 1 <= num_shards <= kMaxShardThreads.
void SplitByShard(const uint64_t* keys, size_t n, int num_shards, std::vector<uint32_t>* positions,
                  std::vector<uint32_t>* begin);

// The table options of each of a server's shards under `config`: the
// server's row cap split evenly (rounded up), and the admission sketch
// narrowed by the shard count (each shard counts 1/N of the keys, so the
// collision rate stays that of one 2^20-wide sketch).
SparseTableOptions ShardTableOptions(const config::Config& config);

// One request's work, shared by the shards it was submitted to. The receive
// thread fills everything above `remaining` before submitting and reads the
// results after `done`; shards write only their keys' part of `pull_values`
// and (shard 0, dense requests) `status` and `dense_values`.
struct ShardTask {
  // kSnapshot and kRestore go to every shard, unsplit: each copies out or
  // reloads its whole table (and shard 0 its dense block).
  enum class Kind {
    kPullSparse,
    kPushSparse,
    kPullDense,
    kPushDense,
    kInitDense,
    kSnapshot,
    kRestore,
    kCopy  // like kSnapshot, for a rejoining backup: no new delta period
  };

  Kind kind = Kind::kPullSparse;
  Incoming request;                     // owns the frames `keys` and `values` point into
  Deadline deadline = Deadline::In(0);  // the request's arrival plus its timeout
  SteadyClock::time_point submitted{};  // when the receive thread queued it
  // Sparse: keys[0..num_keys). Push: gradients values[0..num_keys*dim).
  // Dense: values[0..num_values) (gradients or the initial block).
  const uint64_t* keys = nullptr;
  size_t num_keys = 0;
  const float* values = nullptr;
  size_t num_values = 0;
  bool create_missing = false;
  // With several shards, the keys split by shard (SplitByShard): shard s
  // serves the keys at positions[shard_begin[s] .. shard_begin[s + 1]).
  std::vector<uint32_t> positions;
  std::vector<uint32_t> shard_begin;
  // Aligned copies of misaligned frames (see Payload::Data).
  std::vector<uint64_t> key_copy;
  std::vector<float> value_copy;
  // Pull answer, num_keys * dim floats, allocated by the receive thread.
  PooledArray<float> pull_values;
  size_t pull_count = 0;

  // kRestore: per shard, the serialized table and the name it came from
  // (for errors); dense_bytes for shard 0's dense block.
  std::vector<std::string> restore_sparse;
  std::vector<std::string> restore_names;
  // kRestore: per shard, the deltas to apply after restore_sparse, in order.
  std::vector<std::vector<std::string>> restore_deltas;
  std::vector<std::vector<std::string>> restore_delta_names;
  bool delta = false;       // kSnapshot: only what changed since the last one
  std::string dense_bytes;  // kRestore: input; kSnapshot: shard 0's output
  std::string dense_name;
  // kRestore: input; kSnapshot: shard 0's output: the PushWindow (empty:
  // none, as in checkpoints written before it existed).
  std::string window_bytes;
  std::string window_name;
  // Pushes: shard 0 records the push under this key in its PushWindow
  // once applied (exactly-once; ps/server/push_window.h).
  // in_window: the receive thread entered it in the window (it leaves
  // again unless it is an applied push).
  bool in_window = false;
  bool record_push = false;
  RequestKey push_key;
  // The key partition this task is for (ps/server/server.h), and for a
  // backup applying its primary's update (REPLICATE), that update's seq.
  int partition = 0;
  bool replicated = false;
  uint64_t replica_seq = 0;
  // Primary with a backup: applied here, waiting for the backup.
  bool awaiting_backup = false;

  // Written by the serving shard(s).
  std::vector<SparseTableSnapshot> snapshots;  // kSnapshot: one per shard
  std::vector<Status> shard_status;            // kRestore: one per shard
  Status status;                               // a dense request's outcome
  // A dense push dropped whole for a non-finite gradient (SKIP_ROWS): it
  // takes its turn (window, replication) but changes nothing.
  bool skip_dense = false;
  // A shard thread's failure (an exception: a full table, out of memory),
  // set once; the request is answered with it.
  std::mutex failure_mu;
  Status failure;
  std::vector<float> dense_values;  // PULL_DENSE answer
  std::atomic<int> remaining{0};    // shards yet to finish it
  // Set once by the first shard to start it: serve it, or drop it (expired).
  enum Verdict : int { kUndecided = 0, kServe = 1, kExpired = 2 };
  std::atomic<int> verdict{kUndecided};

  bool expired() const { return verdict.load(std::memory_order_acquire) == kExpired; }
  bool sparse() const { return kind == Kind::kPullSparse || kind == Kind::kPushSparse; }
  bool whole_shard() const {
    return kind == Kind::kSnapshot || kind == Kind::kRestore || kind == Kind::kCopy;
  }
};

class ServerShard;

// Hands a validated task to the shards that serve it, as the server's
// receive thread does: a sparse task's keys are split by shard first when
// there are several (SplitByShard) and every shard gets it; a dense task goes
// to shard 0. Sets task->remaining.
void SubmitToShards(const std::vector<std::unique_ptr<ServerShard>>& shards,
                    std::shared_ptr<ShardTask> task);

// One shard thread and the rows it alone writes: its SparseTable and, on
// shard 0, the server's DenseStore. Owned by the ParameterServer; Submit may
// be called from any thread, Stop and the accessors from the owner.
class ServerShard {
 public:
  // Called on the shard's thread by the last shard to finish a task.
  using DoneCallback = std::function<void(std::shared_ptr<ShardTask>)>;

  // Shard `index` of `num_shards`. `table` must satisfy
  // ValidateSparseTableOptions and `dense` ValidateDenseOptimizer; shard 0
  // owns the dense block (a DenseStore in `dense_mode`), the others ignore
  // `dense`. Shard 0 records the
  // pushes it applies in `window` (not owned; may be null), the others
  // ignore it. Starts the thread.
  // `serve_hook` (a test hook, not owned; may be null or empty) runs on the
  // shard thread before each task is served, inside its failure handling.
  using ServeHook = std::function<void(const ShardTask&)>;
  ServerShard(int index, int num_shards, const SparseTableOptions& table,
              const config::DenseOptimizer& dense, DenseStore::Mode dense_mode, DoneCallback done,
              PushWindow* window = nullptr, const ServeHook* serve_hook = nullptr);
  ServerShard(const ServerShard&) = delete;
  ServerShard& operator=(const ServerShard&) = delete;
  // Stop()s.
  ~ServerShard();

  // Queues the task (any thread). Its `remaining` must count this shard.
  void Submit(std::shared_ptr<ShardTask> task);

  // Serves the sparse `task` on the calling thread, as the shard thread
  // would, when this is a server's only shard, its thread is idle, nothing
  // is queued, no serve hook is set, and the table is sure to do no work
  // over all its rows for it (SparseTable::BoundedFor: no index resize); then
  // returns true with `task` finished, for the caller to answer (the `done`
  // callback is not called). Else returns false and leaves `task` as it was,
  // for the caller to Submit. Saves a small request the two thread
  // hand-offs (the receive thread's to the shard and back) without ever
  // keeping the caller long. The rows stay one thread's at a time: the shard
  // thread takes nothing from its queue until this returns.
  bool TryServeHere(std::shared_ptr<ShardTask>& task);

  // Serves what is queued, then ends and joins the thread. Idempotent.
  void Stop();

  // What the shard owns, for reports and tests. The shard thread owns them
  // until Stop returns, so calling these before is a programmer error
  // (CHECK-fails). dense() is nullptr except on shard 0.
  const SparseTable& table() const {
    CheckStopped();
    return table_;
  }
  const DenseStore* dense() const {
    CheckStopped();
    return dense_.get();
  }
  int index() const { return index_; }
  // Rows of this shard's table as of the latest task it served (any thread;
  // for metrics while the shard runs).
  int64_t rows() const { return rows_.load(std::memory_order_relaxed); }

 private:
  void Loop();
  // What the shard does with a task it took (on whichever thread serves
  // it). Returns whether this shard was the last to finish it; if so it has
  // called `done` unless `here`.
  bool Run(std::shared_ptr<ShardTask> task, bool here);
  void Serve(ShardTask& task);
  // Serve, turning an exception into the task's failure.
  void ServeCatching(ShardTask& task);
  void CheckStopped() const;

  const int index_;
  const int num_shards_;
  SparseTable table_;
  std::unique_ptr<DenseStore> dense_;
  PushWindow* window_;  // shard 0 only
  DoneCallback done_;
  const ServeHook* serve_hook_;
  std::atomic<int64_t> rows_{0};  // table_.size(), published by the shard thread

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<ShardTask>> queue_;  // guarded by mu_
  bool stopping_ = false;                         // guarded by mu_
  bool thread_busy_ = false;                      // guarded by mu_: the shard thread holds a task
  bool serving_here_ = false;                     // guarded by mu_: TryServeHere holds one
  std::thread thread_;                            // last: started by the constructor
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_SERVER_SHARD_H_
