// Checkpointer: the scheduler's side of checkpoints — when to take one, the
// consistent cut, and the commit (config section `checkpoint`).
//
// A cut, step by step:
//  1. Request: the checkpoint id is announced in every HEARTBEAT and CLOCK
//     reply (wire.Meta.checkpoint_request); deferred clock waits are answered
//     at once so that workers blocked by a consistency bound take part too.
//  2. Each training worker, at its next batch boundary, waits until every
//     push it sent is acknowledged and sends CHECKPOINT_READY with its
//     WorkerState (reader position, model state), then waits for the reply:
//     it is paused. A worker that finished training is represented by the
//     final state it sent with its last clock report.
//  3. Once every worker is paused, nothing is in flight that could change a
//     server: the scheduler writes the worker files and sends SNAPSHOT to
//     every server, whose shard threads copy their rows in memory (the
//     pause costs that copy, not the disk).
//  4. When every server answered, the workers are released; the servers
//     write their files in the background and report them (CHECKPOINT_FILES,
//     with sizes and checksums).
//  5. When every file is reported, the MANIFEST is written (the commit) and
//     checkpoints beyond `keep` are deleted.
// A cut that cannot complete (a server reports a write error, or it takes
// longer than cluster.barrier_timeout_ms) is abandoned: workers are
// released, its directory removed, and training goes on.
//
// Owned by the Scheduler; called only from its thread.
#ifndef MTPS_PS_SCHEDULER_CHECKPOINTER_H_
#define MTPS_PS_SCHEDULER_CHECKPOINTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/json_file.h"
#include "common/base/status.h"
#include "common/metrics/metrics.h"
#include "common/net/rpc.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "ps/scheduler/checkpoint_store.h"

namespace mtps {

struct CheckpointerOptions {
  config::Config config;  // the job's (checkpoint, cluster, train sections)
  std::string root;       // the checkpoint directory (resolved)
  int num_servers = 1;
  int num_workers = 1;
};

class Checkpointer {
 public:
  // How long a checkpoint on SIGTERM/SIGINT waits for the workers to pause.
  static constexpr int64_t kStopCollectMs = 10000;

  Checkpointer(Rpc* rpc, CheckpointerOptions options);

  bool enabled() const { return options_.config.checkpoint().enabled(); }
  const CheckpointStore& store() const { return store_; }

  // Creates the directory. Call once before anything else.
  Status Init();
  // The job resumes from `manifest`: ids continue after the newest directory
  // present, and the step counters from the manifest's step.
  void ResumeFrom(const checkpoint::Manifest& manifest);
  // Node ids of the servers, by rank (after registration).
  void SetServers(std::vector<int> server_ids) { server_ids_ = std::move(server_ids); }
  // A server died and its partitions moved (server.replicas): SNAPSHOT goes
  // to the live servers (each checkpoints the partitions it is primary of,
  // reporting each apart), the cut in progress is abandoned and the next
  // checkpoint is full.
  void OnFailover(std::vector<int> live_server_ids);
  // Each committed checkpoint's training pause and its slowest server's
  // file writing, in seconds, go to these (not owned; null: nowhere).
  void set_metrics(Histogram* pause_seconds, Histogram* write_seconds) {
    pause_metric_ = pause_seconds;
    write_metric_ = write_seconds;
  }
  // The job's wall seconds of training so far (for the manifest).
  void set_train_seconds(std::function<double()> f) { train_seconds_ = std::move(f); }

  // The newest checkpoint requested and not yet cut (0: none): what HEARTBEAT
  // and CLOCK replies announce.
  uint64_t requested() const { return cut_ ? cut_->id : 0; }
  bool cutting() const { return cut_.has_value(); }
  // The cut in progress still waits for worker `rank`.
  bool NeedsWorker(int rank) const {
    return cut_ && !cut_->snapshot_sent && cut_->states.count(rank) == 0 &&
           cut_->held.count(rank) == 0;
  }
  // Every worker sent its final state (with its last clock report).
  bool HasAllFinalStates() const {
    return static_cast<int>(final_states_.size()) == options_.num_workers;
  }
  // Runs whenever a cut begins (the scheduler answers workers blocked on
  // their clocks, so that they take part).
  void set_on_begin(std::function<void()> f) { on_begin_ = std::move(f); }

  // Starts a cut now, or, when one is in progress, right after it (requests
  // made meanwhile share that next cut). `on_cut`, if set, runs once the
  // workers are released (OK; with after_commit: once the manifest is
  // written) or the cut was abandoned (the error). Returns false when
  // checkpoints are disabled.
  using Callback = std::function<void(const Status&)>;
  bool Request(const std::string& reason, Callback on_cut = nullptr, bool after_commit = false);

  // Timers: interval_seconds during training, the cut's deadline. Called
  // on every turn of the scheduler's loop.
  void Poll(bool training);
  // A worker's clock report (steps and epochs for interval_steps and
  // at_epoch_end; a finished worker's final state).
  void OnClock(int rank, const wire::Clock& clock);
  // CHECKPOINT_READY of worker `rank`; answered when the cut is.
  void OnReady(int rank, Incoming&& request);
  // CHECKPOINT_FILES of server `rank` (for its own partition, or the one
  // the message names).
  void OnFiles(int rank, Incoming&& request);
  // The job ends: held workers are answered with `error`.
  void Abandon(const Status& error);

  // {"committed", "last_id", "last_step", "max_pause_s", "records": [...]},
  // for summary.json.
  Json SummaryJson() const;

 private:
  struct Cut {
    uint64_t id = 0;
    std::string reason;
    std::string dir;
    SteadyClock::time_point requested, first_ready, released;
    Deadline deadline = Deadline::In(0);
    Deadline collect_deadline = Deadline::In(0);  // for every worker to pause
    std::map<int, Incoming> held;                 // paused workers, by rank
    std::map<int, std::string> states;            // WorkerState bytes, by rank
    bool snapshot_sent = false;
    int servers_copied = 0;
    bool released_workers = false;
    std::map<int, std::vector<wire::CheckpointFile>> server_files;  // by server rank
    std::vector<wire::CheckpointFile> worker_files;
    double max_copy_seconds = 0, max_write_seconds = 0;
    int64_t step = 0;
    std::vector<Callback> on_release, on_commit;
    bool delta = false;  // incremental: chained to chain_
  };
  // The newest committed checkpoint, which the next incremental one chains
  // to: its directory and each server's files in it.
  struct Chain {
    uint64_t id = 0;
    std::string dir;
    std::map<int, std::vector<wire::CheckpointFile>> server_files;  // by server rank
    int deltas = 0;      // incremental checkpoints since the last full one
    uint64_t start = 0;  // the full checkpoint the chain starts at
  };
  struct PendingRequest {
    std::string reason;
    std::vector<Callback> on_release, on_commit;
  };

  void MaybeSnapshot();
  void OnSnapshotReply(int rank, const StatusOr<Message>& reply);
  void Release(const Status& outcome);
  void MaybeCommit();
  void Fail(const std::string& why);
  // Starts the cut of `request` now.
  void Begin(PendingRequest request);
  // The active cut ended (committed or abandoned): starts the pending one.
  void StartPending();
  int64_t TotalSteps() const;

  Rpc* rpc_;
  CheckpointerOptions options_;
  CheckpointStore store_;
  std::vector<int> server_ids_;
  std::function<double()> train_seconds_;
  std::function<void()> on_begin_;
  Histogram* pause_metric_ = nullptr;
  Histogram* write_metric_ = nullptr;

  uint64_t next_id_ = 1;
  std::optional<Cut> cut_;
  std::optional<PendingRequest> pending_;  // to cut once cut_ ends
  std::optional<Chain> chain_;             // none: the next cut is full
  // Trigger state.
  SteadyClock::time_point last_checkpoint_;
  bool timer_started_ = false;
  int64_t last_step_ = 0;          // TotalSteps() at the last cut
  int last_epoch_ = 0;             // epochs completed by every worker at the last epoch cut
  std::map<int, int64_t> clocks_;  // per worker: batches trained (cumulative)
  std::map<int, int> epochs_;      // per worker: epoch of its latest batch
  std::map<int, std::string> final_states_;  // finished workers' WorkerState
  // Records of committed checkpoints (for summary.json).
  Json records_ = Json::array();
  int committed_ = 0;
  double max_pause_ = 0;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_CHECKPOINTER_H_
