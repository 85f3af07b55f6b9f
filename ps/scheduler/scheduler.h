// Scheduler: the control loop of a job and the dispatch of its requests.
//
// Binds its endpoint (port 0 unless told) and publishes it as
// RUN_DIR/scheduler.addr; servers and workers register, get ranks, node ids,
// the cluster epoch and the job config; the scheduler runs named barriers
// (the job's phases: common/cluster/job_phase.h), watches heartbeats (a
// silent node aborts the job), answers the workers' consistency clocks,
// aggregates worker progress into RUN_DIR/progress.jsonl, merges the
// workers' held-out scores into exact per-task AUC and logloss in
// RUN_DIR/summary.json, and tells every node when the job is finished or
// aborted. Its parts, each owned by the Scheduler:
//   Membership  (membership.h)   registration, ranks, epoch, heartbeats;
//   ClockTable  (clock_table.h)  worker clocks, waits and max_clock_gap;
//   JobResults  (job_results.h)  cluster.json, progress.jsonl, summary.json;
//   Checkpointer (checkpointer.h) checkpoints: when, the cut, the commit;
//   ClusterMetrics (cluster_metrics.h) every node's metrics, merged, on
//                  GET /metrics (cluster.metrics_port) and in metrics.jsonl.
// Replication (server.replicas): the scheduler keeps the partition map; a
// dead server's partitions fail over to their backups in a new epoch (the
// map rides on heartbeat replies), and a restarted server may register again
// to copy and back up the partitions that lack a backup.
// Resume (SchedulerOptions.resume): the newest intact checkpoint is chosen
// before registration, and every node's RegisterReply tells it what to
// reload. Signals (SchedulerOptions.signal_fd): SIGUSR1 takes a checkpoint;
// SIGTERM or SIGINT during training takes one and then ends the job
// (aborted, so the launcher can tell it from success); a second one ends it
// at once.
// Files it writes: scheduler.addr, config.pbtxt, cluster.json,
// progress.jsonl, metrics.jsonl, summary.json (each complete file written by
// rename).
// Single-threaded: Run's thread owns all state, its parts' included; the
// one other thread is ClusterMetrics' HTTP server, which only reads the
// text the Run thread publishes.
#ifndef MTPS_PS_SCHEDULER_SCHEDULER_H_
#define MTPS_PS_SCHEDULER_SCHEDULER_H_

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/cluster/job_phase.h"
#include "common/net/rpc.h"
#include "common/net/transport.h"
#include "proto/config.pb.h"
#include "proto/wire.pb.h"
#include "ps/scheduler/checkpointer.h"
#include "ps/scheduler/clock_table.h"
#include "ps/scheduler/cluster_metrics.h"
#include "ps/scheduler/job_results.h"
#include "ps/scheduler/membership.h"

namespace mtps {

struct SchedulerOptions {
  config::Config config;
  int num_servers = 1;
  int num_workers = 1;
  // The address to bind (e.g. 0.0.0.0 or one interface's) and the one
  // peers are told to reach the scheduler at (empty: `host`).
  std::string host = "127.0.0.1";
  std::string advertise_host;
  int port = 0;
  std::string run_dir;
  // Every result file written is also reported here (ResultFiles; not
  // owned; null: files only).
  std::FILE* result_stream = nullptr;
  // Continue from the newest intact checkpoint of the checkpoint directory
  // (starting afresh when there is none).
  bool resume = false;
  // A signalfd delivering SIGUSR1, SIGTERM and SIGINT (-1: none). Not owned.
  int signal_fd = -1;
  // Earlier attempts of this job (mtps-node --restarts; the mtps_job_restarts metric).
  int restarts = 0;
};

class Scheduler {
 public:
  // Takes ownership of `transport`.
  Scheduler(std::unique_ptr<Transport> transport, SchedulerOptions options);

  // Binds and writes RUN_DIR/scheduler.addr and RUN_DIR/config.pbtxt.
  Status Start();
  // Runs the job to its end: OK when every worker finished and results are
  // written, an error naming the cause otherwise.
  Status Run();

  int port() const { return port_; }
  // The URL of the cluster's metrics (empty: cluster.metrics_port -1), after Start.
  const std::string& metrics_url() const { return metrics_url_; }
  const std::string& advertised_host() const {
    return options_.advertise_host.empty() ? options_.host : options_.advertise_host;
  }

 private:
  using Member = Membership::Member;
  struct BarrierState {
    int expected = 0;
    std::vector<Incoming> waiting;
  };

  void Handle(Incoming&& request);
  // The Rpc's authorizer: a CURVE-authenticated request must come from the
  // key of the node it claims to be (common/net/curve.h).
  Status Authorize(const Incoming& request);
  void HandleRegister(Incoming&& request);
  void HandleBarrier(Incoming&& request);
  void HandleHeartbeat(const Member& sender, Incoming&& request);
  void HandleProgress(const Member& sender, Incoming&& request);
  void HandleEvalReport(const Member& sender, Incoming&& request);
  void HandleClock(const Member& sender, Incoming&& request);
  void HandleCheckpointReady(const Member& sender, Incoming&& request);
  void HandleCheckpointFiles(const Member& sender, Incoming&& request);
  // Asks for a checkpoint and lets workers blocked on a clock take part.
  void RequestCheckpoint(const std::string& reason, Checkpointer::Callback on_cut = nullptr,
                         bool after_commit = false);
  // Answers every deferred clock wait (a cut began: they must take part).
  void ReleaseClockWaits();
  // Picks the checkpoint to resume from (options_.resume).
  Status ChooseCheckpoint();
  // The restore part of `node`'s RegisterReply.
  Status FillRestore(const wire::NodeInfo& node, wire::Restore* restore) const;
  void ReadSignals();
  // Wall seconds of training: earlier attempts' and this one's so far.
  double TrainSeconds() const;
  void FinishRegistration();
  // After barrier `name` completed with `waiting` (not yet answered): moves
  // the job on when it is one of the phase barriers (JobBarrier). An error
  // fails the barrier and aborts the job.
  Status OnPhaseBarrier(const std::string& name, const std::vector<Incoming>& waiting);
  // Barrier `name` completed with `waiting`: runs OnPhaseBarrier and
  // answers them (after the final checkpoint, for "trained").
  void CompleteBarrier(const std::string& name, std::vector<Incoming> waiting);
  // Asks every server for its UpdateCounts; `then` runs once all answered
  // or failed.
  void CollectUpdateCounts(std::function<void()> then);
  // summary.json "updates": the servers' and the workers' push counts.
  Json UpdatesJson() const;
  void Abort(const std::string& why);
  void CheckHeartbeats();
  // Server `dead` is silent: its partitions' backups take over in a new
  // epoch; false (the job must abort) when one of them has no live copy.
  bool Failover(const Member& dead);
  // A dead server of a replicated job registers again: it copies the
  // partitions that lack a backup and becomes their backup (REJOINED).
  void HandleRejoin(Incoming&& request);
  void HandleRejoined(const Member& sender, Incoming&& request);
  // A new epoch for a changed partition map (failover, rejoin).
  void NewMapEpoch();
  void MaybeWriteProgress(bool force);
  // Workers that reached (or passed) the "trained" barrier.
  int WorkersDone() const;
  Status WriteClusterJson() const;
  int total_nodes() const { return membership_.total_nodes(); }

  std::unique_ptr<Transport> transport_;
  SchedulerOptions options_;
  Rpc rpc_;
  int port_ = 0;

  Membership membership_;

  // Barriers, by name, and the phase the job's barriers moved it to.
  std::map<std::string, BarrierState> barriers_;
  std::set<std::string> completed_barriers_;
  JobPhase phase_ = JobPhase::kSetup;
  SteadyClock::time_point train_start_;
  SteadyClock::time_point train_end_;

  ClockTable clocks_;   // consistency control (TrainConfig.consistency)
  JobResults results_;  // progress, evaluation, the result files
  Checkpointer checkpointer_;
  ClusterMetrics metrics_;
  std::string metrics_url_;
  std::optional<checkpoint::Manifest> restore_;  // the checkpoint resumed from
  std::vector<std::string> skipped_checkpoints_;
  bool training_started_ = false;
  bool trained_ = false;
  bool stop_requested_ = false;
  int64_t counter_value_ = -1;  // train.counter_key's row, from worker 0
  // Node ids of the servers by rank (set at registration), and their
  // UPDATE_COUNTS answers, asked for when the "end" barrier completes.
  std::vector<int> server_ids_;
  // server.replicas: where each partition lives now, the epochs this
  // scheduler issued (nodes of an older one get the new map in their
  // heartbeat reply), and the failovers so far (summary.json).
  bool replicated() const { return options_.config.server().replicas() > 0; }
  wire::PartitionMap partition_map_;
  std::set<uint64_t> epochs_;
  Json failovers_ = Json::array();
  Json rejoins_ = Json::array();
  std::map<int, wire::UpdateCounts> update_counts_;
  std::vector<std::string> update_count_errors_;

  wire::JobState state_ = wire::JOB_RUNNING;
  std::string abort_reason_;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_SCHEDULER_H_
