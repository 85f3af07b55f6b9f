// Scheduler: membership, barriers, liveness, progress and results of a job.
//
// Binds its endpoint (port 0 unless told) and publishes it as
// RUN_DIR/scheduler.addr; servers and workers register, get ranks, node ids,
// the cluster epoch and the job config; the scheduler runs named barriers,
// watches heartbeats (a silent node aborts the job), aggregates worker
// progress into RUN_DIR/progress.jsonl, merges the workers' held-out scores
// into exact per-task AUC and logloss in RUN_DIR/summary.json, and tells
// every node when the job is finished or aborted.
// Files it writes: scheduler.addr, config.pbtxt, cluster.json,
// progress.jsonl, summary.json (each complete file written by rename).
// Single-threaded: Run owns all state.
#ifndef MTPS_PS_SCHEDULER_SCHEDULER_H_
#define MTPS_PS_SCHEDULER_SCHEDULER_H_

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/rpc.h"
#include "common/net/transport.h"
#include "proto/config.pb.h"
#include "proto/wire.pb.h"

namespace mtps {

struct SchedulerOptions {
  config::Config config;
  int num_servers = 1;
  int num_workers = 1;
  std::string host = "127.0.0.1";
  int port = 0;
  std::string run_dir;
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

 private:
  struct Member {
    wire::NodeInfo info;
    SteadyClock::time_point last_seen;
    bool informed_of_end = false;  // was told the job finished/aborted
  };
  struct WorkerProgress {
    int64_t examples = 0;
    std::vector<double> loss;
    std::vector<std::string> loss_names;
  };
  struct BarrierState {
    int expected = 0;
    std::vector<Incoming> waiting;
  };

  void Handle(Incoming&& request);
  void HandleRegister(Incoming&& request);
  void HandleBarrier(Incoming&& request);
  void HandleHeartbeat(Incoming&& request);
  void HandleProgress(Incoming&& request);
  void HandleEvalReport(Incoming&& request);
  void HandleClock(Incoming&& request);
  // The slowest unfinished worker's clock (INT64_MAX when all finished).
  int64_t MinClock() const;
  void FinishRegistration();
  void OnBarrierComplete(const std::string& name);
  void Abort(const std::string& why);
  void CheckHeartbeats();
  void MaybeWriteProgress(bool force);
  Status WriteSummary();
  Status WriteClusterJson() const;
  int total_nodes() const { return options_.num_servers + options_.num_workers; }

  std::unique_ptr<Transport> transport_;
  SchedulerOptions options_;
  Rpc rpc_;
  int port_ = 0;

  // Registration.
  std::vector<Incoming> pending_registrations_;
  std::map<int, Member> members_;  // by node id, after registration
  bool registered_ = false;
  uint64_t epoch_ = 0;

  std::map<std::string, BarrierState> barriers_;
  std::set<std::string> completed_barriers_;

  // Progress and results.
  std::map<int, WorkerProgress> progress_;  // by worker rank
  SteadyClock::time_point created_;
  SteadyClock::time_point train_start_;
  SteadyClock::time_point train_end_;
  SteadyClock::time_point last_progress_write_;
  int64_t last_progress_examples_ = 0;
  std::map<int, Message> eval_reports_;  // by worker rank

  // Consistency control (TrainConfig.consistency).
  struct ClockState {
    int64_t clock = 0;    // batches fully acknowledged by the servers
    int64_t started = 0;  // batches started
    bool finished = false;
  };
  std::map<int, ClockState> clocks_;  // by worker rank, every worker from registration
  std::vector<std::pair<Incoming, int64_t>> clock_waits_;  // deferred CLOCK requests, wait_for
  int64_t max_clock_gap_ = 0;

  wire::JobState state_ = wire::JOB_RUNNING;
  std::string abort_reason_;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_SCHEDULER_H_
