// ParameterServer: one server process's share of the model.
//
// Holds the sparse embedding rows whose keys hash to this server
// (common/cluster/partition.h) and one contiguous block of the dense tower
// parameters, and answers pulls and pushes until the scheduler reports the
// job finished.
//
// Threads. The thread calling Run is the receive thread: it owns the
// ClusterMember (transport, heartbeats), parses and validates each request
// completely, queues it to the shard threads (ps/server/server_shard.h), and sends
// the replies they hand back. It never touches a row. The rows are split
// over server.shard_threads ServerShards by key; each shard thread is the
// only writer of its rows. A bad request gets an error reply from the
// receive thread and never reaches a shard, so it can neither stop the
// server nor half-apply.
//
// Flow control: at most kMaxQueuedRequests requests (and kMaxQueuedPullBytes
// of pull answers) wait in the shards; beyond that the receive thread stops
// reading and waits for the shards, so ZeroMQ's queues push back on clients.
//
// Partitions and replication. The keys (KeyPartitioner) and the dense
// array (DenseBlockOf) are split into one partition per server rank;
// server r starts as the primary of partition r. With server.replicas 1 it
// is also the backup of partition r-1 (around the ring): a push the primary
// applied goes to the backup (REPLICATE, numbered in the primary's order,
// applied by the backup in that order), and the client is answered once the
// backup acknowledged it, so every acknowledged push is held by two
// servers. Pulls are served by the primary. When a server dies the
// scheduler promotes the backups of its partitions in a new cluster epoch
// (the partition map comes with the heartbeat reply); a request for a
// partition this server is not the primary of is answered STALE_EPOCH, and
// the client resends it where the new map says. A dead server restarted by
// the launcher rejoins: it copies the partitions lacking a backup from their
// primaries (COPY_PARTITION, cut at an update seq; the updates after it are
// held until the copy is loaded) and then reports REJOINED.
//
// Exactly-once: a resent or duplicated push is recognised by its sender,
// incarnation and request id (ps/server/push_window.h) and answered without
// being applied twice; the window is part of the checkpoint.
//
// Checkpoints: a SNAPSHOT from the scheduler is a task for every shard, each
// copying its table in memory; the reply goes back once all have, and a
// CheckpointWriter thread (ps/server/checkpoint_writer.h) writes the files
// while serving goes on, then the server reports them (CHECKPOINT_FILES).
// A server of a resumed job reloads its shards from the checkpoint's files,
// each checked against the manifest's size and checksum, before serving.
//
// Metrics (common/metrics/metrics.h), sent with every heartbeat: requests
// received and those answered with an error, by op; keys pulled and pushed;
// rows held (every partition's shards, as of their latest task); resident
// memory. Counted on the receive thread.
#ifndef MTPS_PS_SERVER_SERVER_H_
#define MTPS_PS_SERVER_SERVER_H_

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "common/base/status.h"
#include "common/cluster/cluster_member.h"
#include "common/metrics/metrics.h"
#include "ps/server/checkpoint_writer.h"
#include "ps/server/server_shard.h"

namespace mtps {

class ParameterServer {
 public:
  // `member` has joined the job and outlives the server. Checks the table
  // and optimizer settings of the job config first (they arrive from the
  // scheduler and must not crash the server).
  static StatusOr<std::unique_ptr<ParameterServer>> Create(ClusterMember* member);

  // Serves until the job finishes (OK) or is aborted / the scheduler is lost.
  Status Run();

  // Stops the shard threads (serving what they hold) if Run did not.
  ~ParameterServer();

  // Counters, for logs and tests; valid after Run returns. `rejected` counts
  // requests answered with an error, `expired` those of them dropped
  // because they waited in a queue past their deadline. The table figures
  // (rows, admitted, admission_rejected: pushed keys that only counted
  // toward admission, evicted, sparse_memory_bytes) sum over the shards.
  struct Stats {
    int64_t pulls = 0, pushes = 0, keys_pulled = 0, keys_pushed = 0, rejected = 0, expired = 0;
    int64_t rows = 0, admitted = 0, admission_rejected = 0, evicted = 0;
    int64_t sparse_memory_bytes = 0;
    int shard_threads = 0;
    std::vector<int64_t> rows_per_shard;
    // Requests after which the receive thread found the queues full and
    // waited for the shards (flow control taken; a test hook).
    int64_t room_waits = 0;
    // Sparse requests served on the receive thread (one shard thread, idle,
    // and at most kServeHereMaxKeys keys; see ServerShard::TryServeHere).
    int64_t served_here = 0;
  };
  const Stats& stats() const { return stats_; }

  // Test hooks, set before Run (empty: nothing runs). `task_done` runs on a
  // shard thread each time a task finishes, before the receive thread
  // learns of it: a test may block there to make the queues fill up.
  // `room_wait` runs on the receive thread each time it finds the queues
  // full and starts waiting for the shards.
  // `shard_serve` runs on a shard thread before it serves each task (it may
  // throw, as a table that cannot grow does).
  struct TestHooks {
    std::function<void()> task_done, room_wait;
    ServerShard::ServeHook shard_serve;
  };
  void set_test_hooks(TestHooks hooks) { test_hooks_ = std::move(hooks); }

  // Queue bounds of the receive thread (see the flow control above).
  static constexpr int kMaxQueuedRequests = 256;
  static constexpr size_t kMaxQueuedPullBytes = size_t{1} << 30;
  // With one shard thread, a sparse request of at most this many keys that
  // finds the shard idle is served on the receive thread; a bigger one goes
  // to the shard thread, so that the receive thread reads and checks the
  // next requests meanwhile.
  static constexpr size_t kServeHereMaxKeys = 8192;

 private:
  // One key partition this server holds (ps/server/server.h file comment):
  // its shard threads and tables, its dense block (on shard 0) and its push
  // window. Receive thread only, except what the shards own.
  struct Partition {
    int id = 0;
    bool primary = true;
    int backup_node = -1;                // primary: its backup's node id (-1: none)
    std::unique_ptr<PushWindow> window;  // before shards: shard 0 records into it
    std::vector<std::unique_ptr<ServerShard>> shards;
    // Primary: the seq of the next update it replicates. Backup: the seq it
    // applies next, and the REPLICATEs that arrived ahead of it.
    uint64_t next_seq = 0;
    std::map<uint64_t, Incoming> early;
    // Backup of a rejoining server: its copy is still on the way (every
    // REPLICATE waits in `early` until it is loaded).
    bool loading = false;
    // Primary: pushes applied here, waiting for the backup's
    // acknowledgement before their client's (copies of them are dropped).
    std::map<uint64_t, std::shared_ptr<ShardTask>> awaiting_backup;  // by seq
    std::set<std::tuple<int32_t, uint64_t, uint64_t>> awaiting_keys;
    // Promoted from backup: when, and whether its first update as primary
    // was acknowledged yet (logged: the failover time).
    SteadyClock::time_point promoted_at{};
    bool promoted = false, first_ack_logged = false;
    // server.nonfinite_gradients: pushes refused and rows dropped here.
    int64_t nonfinite_rejected = 0, nonfinite_rows_skipped = 0;
  };
  // Acknowledges an applied update of `part` (logs a promoted partition's first).
  void AcknowledgeUpdate(Partition& part, const Incoming& request);

  explicit ParameterServer(ClusterMember* member);
  Partition* FindPartition(int id);
  void Handle(Incoming&& request);
  // Enters a validated data-plane request in the push window; false when it
  // is a copy, answered (an applied push) or dropped here.
  bool Admit(Partition& part, ShardTask* task);
  // Validates a request for `part` and fills its task (keys, values,
  // answer array).
  Status PrepareSparse(Partition& part, ShardTask* task);
  Status PrepareDense(Partition& part, ShardTask* task);
  // A push's gradients with NaN or infinity: refused, or (SKIP_ROWS) its
  // bad rows dropped from the task. Counted in `part`.
  Status CheckFinite(Partition& part, ShardTask* task);
  void Submit(Partition& part, std::shared_ptr<ShardTask> task);
  // Runs on a shard thread: queues a finished task for the receive thread.
  void OnDone(std::shared_ptr<ShardTask> task);
  // Receive thread: replies to every finished task.
  void SendFinished();
  // A task submitted through Submit is done: uncounts it, then Finish.
  void FinishQueued(std::shared_ptr<ShardTask> task);
  void Finish(std::shared_ptr<ShardTask> task);
  // Replication: a primary's applied push goes to the backup; the client is
  // answered when the backup acknowledged it.
  void Replicate(Partition& part, std::shared_ptr<ShardTask> task, bool applied);
  void OnBackupAnswer(int partition, uint64_t seq, const StatusOr<Message>& answer);
  // A backup applies REPLICATEs in their primary's order.
  void HandleReplicate(Incoming&& request);
  void ApplyReplicated(Partition& part, Incoming&& request);
  // Applies what waits in `early` from next_seq on, in order.
  void DrainEarly(Partition& part);
  // Primary: a rejoining server asks for a copy of a partition.
  void HandleCopy(Incoming&& request);
  void FinishCopy(ShardTask& task);
  // Rejoining server: copies its partitions from their primaries, loads
  // them, and reports each (REJOINED).
  Status Rejoin();
  Status LoadCopy(Partition& part, const Message& copy);
  // A new partition map (a failover): promote, drop a lost backup.
  void OnPartitionMap();
  // Blocks (receive thread) until the queues are below their bounds,
  // sending heartbeats and answering finished work meanwhile (new requests
  // wait: Rpc::PollHoldingRequests).
  void WaitForRoom();
  void StopShards();
  // Reloads every partition (its shards, dense block and window) from
  // member_->restore().
  Status RestoreCheckpoint();
  Status RestorePartition(Partition& part);
  // Submits a kRestore `task` to `part`'s shards and serves until they
  // loaded it; the first shard's error, or DeadlineExceeded naming `what`.
  Status LoadIntoShards(Partition& part, const std::shared_ptr<ShardTask>& task,
                        const std::string& what);
  // kSnapshot finished: answers the scheduler and queues the files.
  void FinishSnapshot(ShardTask& task);
  // Receive thread: reports written checkpoints to the scheduler.
  void SendWriteResults();
  void Reject(const Incoming& request, const Status& error);
  // Sums the shards' table counters and memory into stats_ (after StopShards).
  void CollectTableStats();
  // The metrics of requests of `op` (received, or answered with an error).
  Counter* RequestMetric(wire::Op op, bool error);
  // Brings the metrics read at snapshot time up to date (rows, memory).
  void UpdateMetrics();

  ClusterMember* member_;
  int dim_;
  ArrayPool<float> answers_;  // pull answers; before the partitions, whose shards write into them
  std::vector<std::unique_ptr<Partition>> partitions_;  // [0]: the server's own
  bool shards_stopped_ = false;
  Stats stats_;
  TestHooks test_hooks_;
  // Receive thread only.
  int queued_requests_ = 0;
  size_t queued_pull_bytes_ = 0;

  // Finished tasks, from the shard threads to the receive thread.
  std::mutex done_mu_;
  std::vector<std::shared_ptr<ShardTask>> done_;      // guarded by done_mu_
  std::vector<CheckpointWriteResult> write_results_;  // guarded by done_mu_
  int reports_in_flight_ = 0;  // CHECKPOINT_FILES unanswered (receive thread)
  // SNAPSHOT ids started and answered (receive thread): resends are not
  // copied again; snapshot_parts_ counts the partitions still copying.
  uint64_t snapshot_started_ = 0, snapshot_answered_ = 0;
  int snapshot_parts_ = 0;
  // Metrics (see the file comment). Receive thread, except the registry.
  MetricRegistry metrics_;
  static constexpr int kOps = 32;  // wire::Op values are below this
  std::array<Counter*, kOps> requests_metric_{}, errors_metric_{};  // made on first use
  Counter* pull_keys_metric_ = nullptr;
  Counter* push_keys_metric_ = nullptr;
  Gauge* rows_metric_ = nullptr;
  Gauge* memory_metric_ = nullptr;
  // Last: destroyed first, so its thread's callback never sees a dead server.
  std::unique_ptr<CheckpointWriter> writer_;
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_SERVER_H_
