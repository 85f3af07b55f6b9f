// The job's result files (see ps/scheduler/job_results.h).
#include "ps/scheduler/job_results.h"

#include <glog/logging.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "common/config/config.h"
#include "common/eval/metrics.h"
#include "ps/scheduler/membership.h"

namespace mtps {

std::string SummaryModelName(const config::ModelConfig& model) {
  const std::string name = ModelKindName(model);
  return name.empty() ? "unknown" : name;
}

Json ProgressJson(const ProgressLine& line) {
  Json loss = Json::object();
  for (size_t i = 0; i < line.loss_names.size() && i < line.loss.size(); ++i) {
    loss[line.loss_names[i]] = line.loss[i];
  }
  Json j;
  j["t"] = line.t;
  j["examples"] = line.examples;
  j["examples_per_sec"] = line.examples_per_sec;
  j["loss"] = std::move(loss);
  j["workers_done"] = line.workers_done;
  j["num_workers"] = line.num_workers;
  if (line.epoch > 0) j["epoch"] = line.epoch;
  j["epochs"] = line.epochs;
  if (line.examples_total >= 0) j["examples_total"] = line.examples_total;
  return j;
}

Json SummaryJson(const JobSummary& s) {
  Json eval = Json::object();
  for (const TaskMetrics& m : s.eval) {
    Json task;
    task["auc"] = m.auc;
    task["logloss"] = m.logloss;
    task["examples"] = m.examples;
    eval[m.task] = std::move(task);
  }
  Json train;
  train["examples"] = s.train_examples;
  train["seconds"] = s.train_seconds;
  train["examples_per_sec"] =
      s.train_seconds > 0 ? static_cast<double>(s.train_examples) / s.train_seconds : 0.0;
  Json consistency;
  consistency["mode"] = s.consistency_mode;
  consistency["staleness"] = s.staleness;
  consistency["max_clock_gap"] = s.max_clock_gap;
  Json cluster;
  cluster["servers"] = s.servers;
  cluster["workers"] = s.workers;
  Json j;
  j["model"] = s.model;
  j["eval"] = std::move(eval);
  j["train"] = std::move(train);
  j["bad_lines_skipped"] = s.bad_lines_skipped;
  j["consistency"] = std::move(consistency);
  j["cluster"] = std::move(cluster);
  return j;
}

Json ClusterJson(uint64_t epoch, const std::vector<wire::NodeInfo>& nodes,
                 const std::string& metrics_url) {
  Json list = Json::array();
  for (const wire::NodeInfo& n : nodes) {
    Json node;
    node["role"] = RoleName(n.role());
    node["rank"] = n.rank();
    node["node_id"] = n.node_id();
    node["host"] = n.host();
    node["port"] = n.port();
    node["pid"] = n.pid();
    list.push_back(std::move(node));
  }
  Json j;
  j["cluster_epoch"] = epoch;
  j["nodes"] = std::move(list);
  if (!metrics_url.empty()) j["metrics"] = metrics_url;
  return j;
}

JobResults::JobResults(const config::Config& config, int num_servers, int num_workers,
                       ResultFiles files)
    : model_(SummaryModelName(config.model())),
      auc_bins_(config.eval().auc_bins()),
      progress_interval_sec_(config.train().progress_interval_sec()),
      consistency_mode_(config::TrainConfig::Consistency_Name(config.train().consistency())),
      staleness_(config.train().staleness()),
      num_servers_(num_servers),
      num_workers_(num_workers),
      epochs_(config.train().epochs()),
      files_(std::move(files)),
      created_(SteadyClock::now()),
      last_progress_write_(created_) {}

Status JobResults::WriteCluster(uint64_t epoch, const std::vector<wire::NodeInfo>& nodes,
                                const std::string& metrics_url) const {
  return files_.Write("cluster.json", JsonText(ClusterJson(epoch, nodes, metrics_url), 2) + "\n");
}

Status JobResults::CheckProgress(const wire::Progress& p) const {
  if (p.loss_names_size() != p.mean_loss_size()) {
    return Status::InvalidArgument("PROGRESS with " + std::to_string(p.loss_names_size()) +
                                   " loss names and " + std::to_string(p.mean_loss_size()) +
                                   " mean losses");
  }
  if (p.running_auc_size() != 0 && p.running_auc_size() != p.loss_names_size()) {
    return Status::InvalidArgument("PROGRESS with " + std::to_string(p.running_auc_size()) +
                                   " running AUCs for " + std::to_string(p.loss_names_size()) +
                                   " loss names");
  }
  if (p.examples() < 0 || p.examples_per_epoch() < 0) {
    return Status::InvalidArgument("PROGRESS with a negative example count");
  }
  if (p.epoch() < 0 || p.epoch() > epochs_) {
    return Status::InvalidArgument("PROGRESS of epoch " + std::to_string(p.epoch()) +
                                   ", the job has " + std::to_string(epochs_));
  }
  return Status::OK();
}

void JobResults::RecordProgress(int rank, const wire::Progress& p) {
  WorkerProgress& wp = progress_[rank];
  wp.examples = p.examples();
  wp.loss.assign(p.mean_loss().begin(), p.mean_loss().end());
  wp.loss_names.assign(p.loss_names().begin(), p.loss_names().end());
  wp.running_auc.assign(p.running_auc().begin(), p.running_auc().end());
  wp.epoch = p.epoch();
  if (p.has_examples_per_epoch()) wp.examples_per_epoch = p.examples_per_epoch();
}

void JobResults::StartProgressClock(SteadyClock::time_point now) { last_progress_write_ = now; }

std::optional<ProgressLine> JobResults::MaybeAppendProgress(bool force, int workers_done) {
  auto now = SteadyClock::now();
  double since = std::chrono::duration<double>(now - last_progress_write_).count();
  if (progress_.empty() || (!force && since < progress_interval_sec_)) return std::nullopt;
  // A forced line soon after the last (the end of training) would divide the
  // final reports' burst by a few milliseconds: its rates span the line
  // before as well.
  const bool short_span = since < progress_interval_sec_ / 2 && lines_written_ >= 2;
  const double rate_span =
      short_span ? std::chrono::duration<double>(now - line_before_write_).count() : since;
  ProgressLine line;
  std::vector<double> auc_sum;
  std::vector<int> auc_count;
  bool every_epoch_known = static_cast<int>(progress_.size()) == num_workers_;
  int64_t examples_total = 0;
  for (auto& [rank, p] : progress_) {
    line.examples += p.examples;
    if (line.loss_names.empty()) {
      line.loss_names = p.loss_names;
      line.loss.assign(line.loss_names.size(), 0.0);
      auc_sum.assign(line.loss_names.size(), 0.0);
      auc_count.assign(line.loss_names.size(), 0);
    }
    for (size_t i = 0; i < line.loss.size() && i < p.loss.size(); ++i) {
      line.loss[i] += p.loss[i] / static_cast<double>(progress_.size());
    }
    for (size_t i = 0; i < auc_sum.size() && i < p.running_auc.size(); ++i) {
      if (std::isnan(p.running_auc[i])) continue;
      auc_sum[i] += p.running_auc[i];
      ++auc_count[i];
    }
    if (p.epoch > 0 && (line.epoch == 0 || p.epoch < line.epoch)) line.epoch = p.epoch;
    if (p.examples_per_epoch < 0) every_epoch_known = false;
    examples_total += int64_t{epochs_} * std::max<int64_t>(p.examples_per_epoch, 0);
    ProgressLine::Worker w;
    w.rank = rank;
    w.examples = p.examples;
    const int64_t base = short_span ? p.examples_at_line_before : p.examples_at_last_line;
    w.examples_per_sec =
        rate_span > 0 ? static_cast<double>(p.examples - base) / rate_span : 0.0;
    line.workers.push_back(w);
    p.examples_at_line_before = p.examples_at_last_line;
    p.examples_at_last_line = p.examples;
  }
  for (size_t i = 0; i < auc_sum.size(); ++i) {
    line.auc.push_back(auc_count[i] > 0 ? auc_sum[i] / auc_count[i]
                                        : std::numeric_limits<double>::quiet_NaN());
  }
  const int64_t base = short_span ? line_before_examples_ : last_progress_examples_;
  line.examples_per_sec =
      rate_span > 0 ? static_cast<double>(line.examples - base) / rate_span : 0.0;
  line.t = SecondsSince(created_);
  line.workers_done = workers_done;
  line.num_workers = num_workers_;
  line.epochs = epochs_;
  if (every_epoch_known) line.examples_total = examples_total;
  Status s = files_.Append("progress.jsonl", JsonText(ProgressJson(line), -1));
  if (!s.ok()) {
    LOG_EVERY_N(WARNING, 10) << s;
  }
  line_before_write_ = last_progress_write_;
  line_before_examples_ = last_progress_examples_;
  last_progress_write_ = now;
  last_progress_examples_ = line.examples;
  ++lines_written_;
  return line;
}

Status JobResults::CheckEvalReport(const Message& msg) const {
  const wire::EvalReport& r = msg.meta.eval_report();
  if (msg.payloads.size() != 2 * static_cast<size_t>(r.tasks_size())) {
    return Status::InvalidArgument("EVAL_REPORT with " + std::to_string(r.tasks_size()) +
                                   " tasks needs " + std::to_string(2 * r.tasks_size()) +
                                   " payload frames, got " + std::to_string(msg.payloads.size()));
  }
  const int bins = auc_bins_;
  if (r.auc_bins() != bins) {
    return Status::InvalidArgument("EVAL_REPORT with auc_bins " + std::to_string(r.auc_bins()) +
                                   ", the job uses " + std::to_string(bins));
  }
  if (bins > 0 && r.logloss_sum_size() != r.tasks_size()) {
    return Status::InvalidArgument("EVAL_REPORT needs one logloss_sum per task");
  }
  for (size_t i = 0; i < msg.payloads.size(); i += 2) {
    const Payload& a = msg.payloads[i];
    const Payload& b = msg.payloads[i + 1];
    bool good = bins > 0
                    ? (a.dtype() == wire::U64 && b.dtype() == wire::U64 &&
                       a.count() == static_cast<size_t>(bins) && b.count() == a.count())
                    : (a.dtype() == wire::F32 && b.dtype() == wire::F32 && a.count() == b.count());
    if (!good) {
      return Status::InvalidArgument(
          "EVAL_REPORT task " + std::to_string(i / 2) +
          (bins > 0 ? ": needs two U64 histograms of " + std::to_string(bins) + " bins"
                    : ": scores and labels must be F32 arrays of equal length"));
    }
  }
  return Status::OK();
}

void JobResults::RecordEval(int rank, Message&& report) { eval_reports_[rank] = std::move(report); }

JobResults::WorkerPushes JobResults::SumWorkerPushes() const {
  WorkerPushes sum;
  for (const auto& [rank, msg] : eval_reports_) {
    const wire::EvalReport& r = msg.meta.eval_report();
    sum.acknowledged += r.pushes_acknowledged();
    sum.resent += r.pushes_resent();
    sum.batches_acknowledged += r.batches_acknowledged();
  }
  return sum;
}

int64_t JobResults::SumBadLinesSkipped() const {
  int64_t sum = 0;
  for (const auto& [rank, msg] : eval_reports_) sum += msg.meta.eval_report().bad_lines_skipped();
  return sum;
}

StatusOr<std::vector<TaskMetrics>> JobResults::MergeEval(int64_t* train_examples) const {
  if (static_cast<int>(eval_reports_.size()) != num_workers_) {
    return Status::Internal(std::to_string(eval_reports_.size()) + " of " +
                            std::to_string(num_workers_) +
                            " workers sent their evaluation before the end barrier");
  }
  const wire::EvalReport& first = eval_reports_.begin()->second.meta.eval_report();
  std::vector<std::string> tasks(first.tasks().begin(), first.tasks().end());
  const int bins = auc_bins_;
  std::vector<std::vector<float>> scores(tasks.size()), labels(tasks.size());
  std::vector<ScoreHistogram> histograms;
  if (bins > 0) histograms.assign(tasks.size(), ScoreHistogram(bins));
  *train_examples = 0;
  std::vector<float> scratch;
  std::vector<uint64_t> scratch_u64;
  for (const auto& [rank, msg] : eval_reports_) {
    const wire::EvalReport& r = msg.meta.eval_report();
    if (std::vector<std::string>(r.tasks().begin(), r.tasks().end()) != tasks) {
      return Status::InvalidArgument("worker " + std::to_string(rank) +
                                     " reported different evaluation tasks");
    }
    *train_examples += r.train_examples();
    for (size_t t = 0; t < tasks.size(); ++t) {
      const Payload& a = msg.payloads[2 * t];
      const Payload& b = msg.payloads[2 * t + 1];
      if (bins > 0) {
        ScoreHistogram h(bins);
        const uint64_t* pos = a.Data<uint64_t>(&scratch_u64);
        std::copy(pos, pos + bins, h.positives().begin());
        const uint64_t* neg = b.Data<uint64_t>(&scratch_u64);
        std::copy(neg, neg + bins, h.negatives().begin());
        h.logloss_sum() = r.logloss_sum(static_cast<int>(t));
        histograms[t].Merge(h);
        continue;
      }
      const float* sp = a.Data<float>(&scratch);
      scores[t].insert(scores[t].end(), sp, sp + a.count());
      const float* lp = b.Data<float>(&scratch);
      labels[t].insert(labels[t].end(), lp, lp + b.count());
    }
  }
  std::vector<TaskMetrics> metrics;
  for (size_t t = 0; t < tasks.size(); ++t) {
    const bool binned = bins > 0;
    TaskMetrics m;
    m.task = tasks[t];
    m.auc = binned ? histograms[t].Auc() : Auc(scores[t], labels[t]);
    m.logloss = binned ? histograms[t].LogLoss() : LogLoss(scores[t], labels[t]);
    m.examples = binned ? histograms[t].examples() : static_cast<int64_t>(scores[t].size());
    LOG(INFO) << "eval " << m.task << ": auc " << m.auc << ", logloss " << m.logloss << " over "
              << m.examples << " examples" << (binned ? " (binned AUC)" : "");
    metrics.push_back(std::move(m));
  }
  return metrics;
}

Status JobResults::WriteSummary(double train_seconds, int64_t max_clock_gap, const Json& extra) {
  JobSummary s;
  MTPS_ASSIGN_OR_RETURN(s.eval, MergeEval(&s.train_examples));
  s.model = model_;
  s.train_seconds = train_seconds;
  s.bad_lines_skipped = SumBadLinesSkipped();
  if (s.bad_lines_skipped > 0) {
    LOG(WARNING) << "the workers skipped " << s.bad_lines_skipped
                 << " malformed data lines (data.max_bad_lines)";
  }
  s.consistency_mode = consistency_mode_;
  s.staleness = staleness_;
  s.max_clock_gap = max_clock_gap;
  s.servers = num_servers_;
  s.workers = num_workers_;
  Json j = SummaryJson(s);
  if (extra.is_object()) {
    for (const auto& [key, value] : extra.items()) j[key] = value;
  }
  return files_.Write("summary.json", JsonText(j, 2) + "\n");
}

void JobResults::AppendEvent(const std::string& event, Json fields) {
  Json j;
  j["event"] = event;
  j["t"] = std::chrono::duration<double>(SteadyClock::now() - created_).count();
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) j[key] = value;
  }
  Status s = files_.Append("progress.jsonl", JsonText(j, -1));
  if (!s.ok()) LOG(WARNING) << "cannot append to progress.jsonl: " << s;
}

}  // namespace mtps
