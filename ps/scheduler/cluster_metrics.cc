// The cluster's merged metrics and metrics.jsonl (see ps/scheduler/cluster_metrics.h).
#include "ps/scheduler/cluster_metrics.h"

#include <glog/logging.h>

#include <chrono>
#include <cmath>

#include "common/metrics/exposition.h"
#include "common/metrics/process_stats.h"

namespace mtps {
namespace {

constexpr char kPrefix[] = "mtps_";

std::optional<int64_t> Figure(const wire::MetricsSnapshot* s, const char* name) {
  double v = 0;
  if (s == nullptr || !SumOfFamily(*s, name, &v) || !std::isfinite(v)) return std::nullopt;
  return static_cast<int64_t>(std::llround(v));
}

void PutIf(Json* j, const char* key, const std::optional<int64_t>& v) {
  if (v) (*j)[key] = *v;
}

}  // namespace

Json MetricsJson(const MetricsLine& line) {
  Json loss = Json::object();
  for (const auto& [task, v] : line.loss) loss[task] = v;
  Json auc = Json::object();
  for (const auto& [task, v] : line.auc) {
    if (!std::isnan(v)) auc[task] = v;
  }
  Json servers = Json::array();
  for (const MetricsLine::Server& s : line.servers) {
    Json j;
    j["rank"] = s.rank;
    PutIf(&j, "rows", s.rows);
    PutIf(&j, "memory_bytes", s.memory_bytes);
    PutIf(&j, "requests_total", s.requests_total);
    PutIf(&j, "pull_keys_total", s.pull_keys_total);
    PutIf(&j, "push_keys_total", s.push_keys_total);
    servers.push_back(std::move(j));
  }
  Json workers = Json::array();
  for (const MetricsLine::Worker& w : line.workers) {
    Json j;
    j["rank"] = w.rank;
    j["examples"] = w.examples;
    j["examples_per_sec"] = w.examples_per_sec;
    PutIf(&j, "memory_bytes", w.memory_bytes);
    workers.push_back(std::move(j));
  }
  Json j;
  j["t"] = line.t;
  j["examples"] = line.examples;
  j["examples_per_sec"] = line.examples_per_sec;
  if (line.epoch > 0) j["epoch"] = line.epoch;
  j["loss"] = std::move(loss);
  j["auc"] = std::move(auc);
  j["servers"] = std::move(servers);
  j["workers"] = std::move(workers);
  return j;
}

ClusterMetrics::ClusterMetrics(int num_servers, int num_workers, int epochs, int restarts)
    : num_servers_(num_servers), num_workers_(num_workers) {
  restarts_ = registry_.GetGauge("mtps_job_restarts",
                                 "Earlier attempts of this job (restarts by the launcher).");
  restarts_->Set(restarts);
  memory_ = registry_.GetGauge("mtps_process_resident_memory_bytes",
                               "Resident memory of the process (/proc/self/statm).");
  job_epoch_ = registry_.GetGauge("mtps_job_epoch",
                                  "The epoch (1-based) the slowest training worker is in.");
  job_epochs_ = registry_.GetGauge("mtps_job_epochs", "The job's epochs (train.epochs).");
  job_epochs_->Set(epochs);
  job_examples_expected_ = registry_.GetGauge(
      "mtps_job_examples_expected",
      "Training examples the job will have trained at its end (known once every worker read one "
      "epoch; 0 before).");
  job_examples_per_sec_ = registry_.GetGauge(
      "mtps_job_examples_per_second",
      "Training examples per second of the whole job over the latest progress interval.");
  job_workers_done_ =
      registry_.GetGauge("mtps_job_workers_done", "Workers that finished training.");
  checkpoint_pause_ = registry_.GetHistogram(
      "mtps_checkpoint_pause_seconds",
      "How long training paused for each committed checkpoint (the servers' in-memory copy).",
      DurationBuckets());
  checkpoint_write_ = registry_.GetHistogram(
      "mtps_checkpoint_write_seconds",
      "How long the slowest server took to write its files of each committed checkpoint.",
      DurationBuckets());
  rejected_ = registry_.GetCounter(
      "mtps_metrics_snapshots_rejected_total",
      "Metrics snapshots from servers and workers the scheduler refused as malformed.");
}

ClusterMetrics::~ClusterMetrics() { StopServer(1000); }

StatusOr<int> ClusterMetrics::StartServer(const std::string& host, int port) {
  HttpServerOptions o;
  o.host = host;
  o.port = port;
  http_ = std::make_unique<HttpServer>(o);
  http_->Handle("/metrics", kPrometheusTextContentType, [this] { return Text(); });
  MaybePublish(true);
  return http_->Start();
}

void ClusterMetrics::StopServer(int64_t timeout_ms) {
  if (http_) http_->Stop(timeout_ms);
}

Status ClusterMetrics::Record(wire::Role role, int rank, const wire::MetricsSnapshot& snapshot) {
  const std::string who = (role == wire::SERVER ? "server " : "worker ") + std::to_string(rank);
  Status s = ValidateSnapshot(snapshot, {"role", "rank"});
  for (int i = 0; s.ok() && i < snapshot.families_size(); ++i) {
    if (snapshot.families(i).name().compare(0, sizeof(kPrefix) - 1, kPrefix) != 0) {
      s = Status::InvalidArgument("metric " + snapshot.families(i).name() + " lacks the prefix " +
                                  kPrefix);
    }
  }
  const bool known = (role == wire::SERVER && rank >= 0 && rank < num_servers_) ||
                     (role == wire::WORKER && rank >= 0 && rank < num_workers_);
  if (s.ok() && !known) s = Status::InvalidArgument("no such node");
  if (!s.ok()) {
    rejected_->Increment();
    return Status::InvalidArgument("metrics of " + who + ": " + s.message());
  }
  (role == wire::SERVER ? servers_ : workers_)[rank] = snapshot;
  return Status::OK();
}

const wire::MetricsSnapshot* ClusterMetrics::Latest(wire::Role role, int rank) const {
  const auto& m = role == wire::SERVER ? servers_ : workers_;
  auto it = m.find(rank);
  return it == m.end() ? nullptr : &it->second;
}

void ClusterMetrics::OnProgress(const ProgressLine& p) {
  if (p.epoch > 0) job_epoch_->Set(p.epoch);
  job_examples_expected_->Set(p.examples_total >= 0 ? static_cast<double>(p.examples_total) : 0);
  job_examples_per_sec_->Set(p.examples_per_sec);
  job_workers_done_->Set(p.workers_done);
}

MetricsLine ClusterMetrics::Line(const ProgressLine& p) const {
  MetricsLine line;
  line.t = p.t;
  line.examples = p.examples;
  line.examples_per_sec = p.examples_per_sec;
  line.epoch = p.epoch;
  for (size_t i = 0; i < p.loss_names.size(); ++i) {
    if (i < p.loss.size()) line.loss.emplace_back(p.loss_names[i], p.loss[i]);
    if (i < p.auc.size()) line.auc.emplace_back(p.loss_names[i], p.auc[i]);
  }
  for (int r = 0; r < num_servers_; ++r) {
    const wire::MetricsSnapshot* s = Latest(wire::SERVER, r);
    MetricsLine::Server server;
    server.rank = r;
    server.rows = Figure(s, "mtps_server_rows");
    server.memory_bytes = Figure(s, "mtps_process_resident_memory_bytes");
    server.requests_total = Figure(s, "mtps_server_requests_total");
    server.pull_keys_total = Figure(s, "mtps_server_pull_keys_total");
    server.push_keys_total = Figure(s, "mtps_server_push_keys_total");
    line.servers.push_back(server);
  }
  for (const ProgressLine::Worker& w : p.workers) {
    MetricsLine::Worker worker;
    worker.rank = w.rank;
    worker.examples = w.examples;
    worker.examples_per_sec = w.examples_per_sec;
    worker.memory_bytes =
        Figure(Latest(wire::WORKER, w.rank), "mtps_process_resident_memory_bytes");
    line.workers.push_back(worker);
  }
  return line;
}

void ClusterMetrics::AppendLine(const ProgressLine& progress, const ResultFiles& files) const {
  Status s = files.Append("metrics.jsonl", JsonText(MetricsJson(Line(progress)), -1));
  if (!s.ok()) {
    LOG_EVERY_N(WARNING, 10) << "cannot append to metrics.jsonl: " << s;
  }
}

wire::MetricsSnapshot ClusterMetrics::Merged() const {
  const wire::MetricsSnapshot own = registry_.Snapshot();
  std::vector<LabelledSnapshot> parts;
  parts.push_back({{{"role", "scheduler"}, {"rank", "0"}}, &own});
  for (const auto& [rank, s] : servers_) {
    parts.push_back({{{"role", "server"}, {"rank", std::to_string(rank)}}, &s});
  }
  for (const auto& [rank, s] : workers_) {
    parts.push_back({{{"role", "worker"}, {"rank", std::to_string(rank)}}, &s});
  }
  std::vector<std::string> conflicts;
  wire::MetricsSnapshot merged = MergeSnapshots(parts, &conflicts);
  for (const std::string& c : conflicts) {
    LOG_EVERY_N(WARNING, 100) << c;
  }
  return merged;
}

void ClusterMetrics::MaybePublish(bool force) {
  const auto now = SteadyClock::now();
  if (!force && published_ && now - last_publish_ < std::chrono::milliseconds(kPublishIntervalMs)) {
    return;
  }
  if (auto rss = ResidentMemoryBytes(); rss.ok()) memory_->Set(static_cast<double>(*rss));
  std::string text = RenderText(Merged());
  {
    std::lock_guard<std::mutex> lock(text_mu_);
    text_.swap(text);
  }
  last_publish_ = now;
  published_ = true;
}

std::string ClusterMetrics::Text() const {
  std::lock_guard<std::mutex> lock(text_mu_);
  return text_;
}

}  // namespace mtps
