// ClusterMetrics: the whole job's metrics, as the scheduler serves them over
// HTTP in Prometheus's text format and appends them to RUN_DIR/metrics.jsonl.
//
// Every server and worker keeps its own metrics (MetricRegistry) and sends
// their snapshot with each heartbeat (wire.Meta.metrics). The scheduler
// checks each like any peer input (ValidateSnapshot, names starting with
// "mtps_", no "role" or "rank" label of its own; a bad one is dropped,
// logged and counted, and the heartbeat is answered as usual), keeps the
// latest per node, and merges them with its own metrics, each series
// labelled role="scheduler|server|worker" and rank="R". GET /metrics on
// cluster.metrics_port (bound on the scheduler's bind address; cluster.json
// "metrics" names the URL) answers the latest merge, re-rendered by the
// scheduler's thread at most every kPublishIntervalMs.
//
// What is exported (see also README "Metrics"):
//   every node    mtps_process_resident_memory_bytes (gauge)
//   workers       mtps_train_examples_total (counter),
//                 mtps_train_examples_per_second, mtps_train_epoch,
//                 mtps_train_loss{task}, mtps_train_auc{task} (gauges; the
//                 AUC of the latest training predictions before each update),
//                 mtps_client_pull_latency_seconds{op},
//                 mtps_client_push_latency_seconds{op} (histograms),
//                 mtps_data_bad_lines_skipped_total (counter)
//   servers       mtps_server_requests_total{op},
//                 mtps_server_request_errors_total{op},
//                 mtps_server_pull_keys_total, mtps_server_push_keys_total
//                 (counters), mtps_server_rows (gauge)
//   scheduler     mtps_job_restarts (mtps-node --restarts), mtps_job_epoch,
//                 mtps_job_epochs, mtps_job_examples_expected,
//                 mtps_job_examples_per_second, mtps_job_workers_done
//                 (gauges), mtps_checkpoint_pause_seconds,
//                 mtps_checkpoint_write_seconds (histograms),
//                 mtps_metrics_snapshots_rejected_total (counter)
//
// RUN_DIR/metrics.jsonl, one line per progress.jsonl line (the same tick,
// train.progress_interval_sec), through the scheduler's ResultFiles (so
// mirrored to a remote launcher):
//   {"t": seconds since the scheduler started, "examples": N,
//    "examples_per_sec": x, "epoch": E (1-based, the slowest worker's),
//    "loss": {task: mean training loss}, "auc": {task: mean of the workers'
//    running AUCs},
//    "servers": [{"rank", "rows", "memory_bytes", "requests_total",
//                 "pull_keys_total", "push_keys_total"}...],
//    "workers": [{"rank", "examples", "examples_per_sec", "memory_bytes"}...]}
// Servers and workers by rank; what is not known yet (a node that sent no
// snapshot, an AUC while a class is missing, the epoch before any report)
// is left out rather than written as 0.
//
// Owned by the Scheduler and called from its thread, except Text(), which
// the HTTP server's thread calls.
#ifndef MTPS_PS_SCHEDULER_CLUSTER_METRICS_H_
#define MTPS_PS_SCHEDULER_CLUSTER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/deadline.h"
#include "common/base/json_file.h"
#include "common/base/status.h"
#include "common/http/http_server.h"
#include "common/metrics/metrics.h"
#include "proto/wire.pb.h"
#include "ps/scheduler/job_results.h"
#include "ps/scheduler/result_files.h"

namespace mtps {

// One line of metrics.jsonl (see the file comment); unset optionals are
// left out.
struct MetricsLine {
  double t = 0;
  int64_t examples = 0;
  double examples_per_sec = 0;
  int epoch = 0;  // 0: unknown
  std::vector<std::pair<std::string, double>> loss;
  std::vector<std::pair<std::string, double>> auc;  // NaN values are left out
  struct Server {
    int rank = 0;
    std::optional<int64_t> rows, memory_bytes, requests_total, pull_keys_total, push_keys_total;
  };
  struct Worker {
    int rank = 0;
    int64_t examples = 0;
    double examples_per_sec = 0;
    std::optional<int64_t> memory_bytes;
  };
  std::vector<Server> servers;
  std::vector<Worker> workers;
};
Json MetricsJson(const MetricsLine& line);

class ClusterMetrics {
 public:
  static constexpr int64_t kPublishIntervalMs = 200;

  // `restarts`: earlier attempts of this job (mtps-node --restarts).
  ClusterMetrics(int num_servers, int num_workers, int epochs, int restarts);
  ~ClusterMetrics();

  // Starts GET /metrics on `host`:`port` (0: any free port); the bound port.
  StatusOr<int> StartServer(const std::string& host, int port);
  // Stops the HTTP server (answers being written get `timeout_ms`).
  void StopServer(int64_t timeout_ms);

  // The scheduler's own metrics (the Checkpointer records into them).
  MetricRegistry& registry() { return registry_; }
  Histogram* checkpoint_pause() { return checkpoint_pause_; }
  Histogram* checkpoint_write() { return checkpoint_write_; }

  // A heartbeat's snapshot from server or worker `rank`: checked, then
  // kept in place of the node's previous one. An error (the snapshot is
  // dropped and counted) names the node and the rule.
  Status Record(wire::Role role, int rank, const wire::MetricsSnapshot& snapshot);

  // The job-level gauges from a progress line.
  void OnProgress(const ProgressLine& progress);
  // metrics.jsonl's line for the progress line of the same tick.
  MetricsLine Line(const ProgressLine& progress) const;
  // Appends Line(progress) to metrics.jsonl; a failure is logged.
  void AppendLine(const ProgressLine& progress, const ResultFiles& files) const;

  // Re-renders the text GET /metrics answers, when kPublishIntervalMs
  // passed since the last time (or `force`).
  void MaybePublish(bool force);
  // The whole cluster's metrics merged now (for tests and Publish).
  wire::MetricsSnapshot Merged() const;
  // The text GET /metrics answers (any thread).
  std::string Text() const;

 private:
  const wire::MetricsSnapshot* Latest(wire::Role role, int rank) const;

  const int num_servers_;
  const int num_workers_;
  MetricRegistry registry_;
  Gauge* restarts_ = nullptr;
  Gauge* memory_ = nullptr;
  Gauge* job_epoch_ = nullptr;
  Gauge* job_epochs_ = nullptr;
  Gauge* job_examples_expected_ = nullptr;
  Gauge* job_examples_per_sec_ = nullptr;
  Gauge* job_workers_done_ = nullptr;
  Histogram* checkpoint_pause_ = nullptr;
  Histogram* checkpoint_write_ = nullptr;
  Counter* rejected_ = nullptr;
  std::map<int, wire::MetricsSnapshot> servers_, workers_;  // by rank, the latest
  SteadyClock::time_point last_publish_{};
  bool published_ = false;

  mutable std::mutex text_mu_;
  std::string text_;  // guarded by text_mu_

  std::unique_ptr<HttpServer> http_;  // last: stopped before the rest goes
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_CLUSTER_METRICS_H_
