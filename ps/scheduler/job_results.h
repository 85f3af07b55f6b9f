// JobResults: the files a job's results go to, and what they are made from.
//
//   RUN_DIR/cluster.json    every node (role, rank, node id, host, port, pid)
//                           and the cluster epoch, once all registered;
//   RUN_DIR/progress.jsonl  one line per progress_interval_sec while the
//                           workers train: time, examples, examples/s, mean
//                           loss per task over the workers' latest reports,
//                           workers done, the epoch of the slowest worker,
//                           the epochs, and the examples the whole job will
//                           train once every worker read one epoch (for an
//                           ETA);
//   RUN_DIR/summary.json    at the end: the model, the exact (or binned) AUC,
//                           logloss and examples per task over every worker's
//                           held-out scores, training throughput, the
//                           malformed data lines the workers skipped, the
//                           consistency mode and max_clock_gap, the cluster.
//
// JobResults keeps the workers' latest progress reports and their
// evaluation reports, merges them, and writes these files with nlohmann::json
// (common/base/json_file.h; cluster.json and summary.json atomically). The
// *Json functions below build the documents (key order as written; integers
// as integers; NaN/infinite metrics as null) and are what tests check.
// Owned by the Scheduler and called only from its Run thread; not
// thread-safe.
#ifndef MTPS_PS_SCHEDULER_JOB_RESULTS_H_
#define MTPS_PS_SCHEDULER_JOB_RESULTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/json_file.h"
#include "common/base/status.h"
#include "common/net/wire.h"
#include "proto/config.pb.h"
#include "proto/wire.pb.h"
#include "ps/scheduler/result_files.h"

namespace mtps {

// summary.json's "model": ModelKindName (common/config/config.h), or
// "unknown" for a model with no kind (which the config checks reject).
std::string SummaryModelName(const config::ModelConfig& model);

// One line of progress.jsonl, and what metrics.jsonl takes from the same
// tick (ps/scheduler/cluster_metrics.h).
struct ProgressLine {
  double t = 0;  // seconds since the scheduler started
  int64_t examples = 0;
  double examples_per_sec = 0;
  std::vector<std::string> loss_names;
  std::vector<double> loss;  // one per name
  int workers_done = 0;
  int num_workers = 0;
  // The epoch (1-based) the slowest worker is in (the lowest any worker
  // reported; 0: none reported one), train.epochs, and the training
  // examples the job will have trained at its end: once every worker
  // reported its examples per epoch, the sum of epochs x that (-1 before).
  int epoch = 0;
  int epochs = 0;
  int64_t examples_total = -1;
  // Not in progress.jsonl (metrics.jsonl): per loss name, the mean of the
  // workers' running training AUCs (NaN: none known), and per worker.
  std::vector<double> auc;
  struct Worker {
    int rank = 0;
    int64_t examples = 0;
    double examples_per_sec = 0;
  };
  std::vector<Worker> workers;  // by rank, those that reported
};
// {"t", "examples", "examples_per_sec", "loss": {name: value...},
//  "workers_done", "num_workers", "epoch", "epochs", "examples_total"}; "epoch"
// only when known (> 0), "examples_total" only when known (>= 0).
Json ProgressJson(const ProgressLine& line);

// The held-out metrics of one task.
struct TaskMetrics {
  std::string task;
  double auc = 0;
  double logloss = 0;
  int64_t examples = 0;
};
// What summary.json says.
struct JobSummary {
  std::string model;
  std::vector<TaskMetrics> eval;
  int64_t train_examples = 0;
  double train_seconds = 0;
  int64_t bad_lines_skipped = 0;  // summed over the workers (data.max_bad_lines)
  std::string consistency_mode;   // TrainConfig.Consistency name
  int64_t staleness = 0;
  int64_t max_clock_gap = 0;
  int servers = 0;
  int workers = 0;
};
// {"model", "eval": {task: {"auc", "logloss", "examples"}...},
//  "train": {"examples", "seconds", "examples_per_sec"}, "bad_lines_skipped",
//  "consistency": {"mode", "staleness", "max_clock_gap"},
//  "cluster": {"servers", "workers"}}; examples_per_sec is examples/seconds
// (0.0 when seconds is not positive).
Json SummaryJson(const JobSummary& summary);

// {"cluster_epoch", "nodes": [{"role", "rank", "node_id", "host", "port",
// "pid"}...], "metrics"}, nodes in the given order; "metrics" (the URL of
// the cluster's metrics, ps/scheduler/cluster_metrics.h) only when not empty.
Json ClusterJson(uint64_t epoch, const std::vector<wire::NodeInfo>& nodes,
                 const std::string& metrics_url = "");

class JobResults {
 public:
  // Files go to `files` (RUN_DIR, perhaps mirrored); `config` gives the model, eval.auc_bins,
  // train.progress_interval_sec and the consistency settings. Progress
  // times ("t") count from construction.
  JobResults(const config::Config& config, int num_servers, int num_workers, ResultFiles files);

  const ResultFiles& files() const { return files_; }

  // Writes cluster.json.
  Status WriteCluster(uint64_t epoch, const std::vector<wire::NodeInfo>& nodes,
                      const std::string& metrics_url = "") const;

  // OK when `progress` is a well-formed PROGRESS report for this job:
  // mean_loss and running_auc (if any) one per loss name, examples and
  // examples_per_epoch >= 0, epoch in [0, train.epochs]. Otherwise the error
  // to answer it with.
  Status CheckProgress(const wire::Progress& progress) const;
  // Keeps worker `rank`'s latest progress report (checked by CheckProgress).
  void RecordProgress(int rank, const wire::Progress& progress);
  // The interval between progress lines starts at `now`.
  void StartProgressClock(SteadyClock::time_point now);
  // Appends a progress line when some worker reported and either `force` or
  // progress_interval_sec passed since the last line. Examples are summed
  // over the workers, losses averaged; examples/s is over the time since the
  // last line. A write failure is logged, not returned. Returns the line
  // appended, if any.
  std::optional<ProgressLine> MaybeAppendProgress(bool force, int workers_done);

  // OK when `report` is a well-formed EVAL_REPORT for this job: two payload
  // frames per task, U64 histograms of auc_bins bins and one logloss_sum per
  // task when the job bins scores, else F32 scores and labels of equal
  // length. Otherwise the error to answer it with.
  Status CheckEvalReport(const Message& report) const;
  // Keeps worker `rank`'s checked evaluation report (a later one replaces it).
  void RecordEval(int rank, Message&& report);
  // The workers' push bookkeeping, summed over the reports kept so far.
  struct WorkerPushes {
    int64_t acknowledged = 0, resent = 0, batches_acknowledged = 0;
  };
  WorkerPushes SumWorkerPushes() const;

  // Malformed data lines skipped, summed over the reports kept so far.
  int64_t SumBadLinesSkipped() const;

  // Merges every worker's evaluation and writes summary.json. Internal when
  // not every worker reported, InvalidArgument when they reported different
  // tasks, IoError when the file cannot be written.
  // `extra` members (e.g. "checkpoints", "resumed_from") are added at the
  // top level.
  Status WriteSummary(double train_seconds, int64_t max_clock_gap, const Json& extra = Json());

  // Appends an event line ({"event": ..., "t": ...} plus `fields`) to
  // progress.jsonl, e.g. when training starts (the launcher reads it to
  // time a recovery). A write failure is logged.
  void AppendEvent(const std::string& event, Json fields);

 private:
  struct WorkerProgress {
    int64_t examples = 0;
    std::vector<double> loss;
    std::vector<std::string> loss_names;
    std::vector<double> running_auc;  // empty: not reported
    int epoch = 0;                    // 0: not reported
    int64_t examples_per_epoch = -1;  // -1: not known yet
    int64_t examples_at_last_line = 0;
    int64_t examples_at_line_before = 0;
  };
  // Per-task metrics over every worker's report (all of them present).
  StatusOr<std::vector<TaskMetrics>> MergeEval(int64_t* train_examples) const;

  const std::string model_;
  const int auc_bins_;
  const double progress_interval_sec_;
  const std::string consistency_mode_;
  const int64_t staleness_;
  const int num_servers_;
  const int num_workers_;
  const int epochs_;
  const ResultFiles files_;

  const SteadyClock::time_point created_;
  std::map<int, WorkerProgress> progress_;  // by worker rank
  SteadyClock::time_point last_progress_write_;
  int64_t last_progress_examples_ = 0;
  // The line before the last: the rates' base after a short span.
  SteadyClock::time_point line_before_write_;
  int64_t line_before_examples_ = 0;
  int64_t lines_written_ = 0;
  std::map<int, Message> eval_reports_;  // by worker rank
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_JOB_RESULTS_H_
