// The scheduler's control loop (see ps/scheduler/scheduler.h).
#include "ps/scheduler/scheduler.h"

#include <unistd.h>

#include <algorithm>
#include <limits>
#include <random>
#include <sstream>

#include "common/base/file_util.h"
#include "common/config/config.h"
#include "common/eval/metrics.h"

namespace mtps {
namespace {

const char* RoleName(wire::Role role) {
  switch (role) {
    case wire::SCHEDULER:
      return "scheduler";
    case wire::SERVER:
      return "server";
    case wire::WORKER:
      return "worker";
    default:
      return "unknown";
  }
}

std::string ModelName(const config::ModelConfig& model) {
  switch (model.kind_case()) {
    case config::ModelConfig::kEsmm:
      return "esmm";
    case config::ModelConfig::kMmoe:
      return "mmoe";
    case config::ModelConfig::kSharedBottom:
      return "shared_bottom";
    case config::ModelConfig::kPle:
      return "ple";
    case config::ModelConfig::kSingleTask:
      return "single_task";
    case config::ModelConfig::KIND_NOT_SET:
      break;
  }
  return "unknown";  // ValidateConfig rejects a config without a model
}

std::string NodeLabel(const wire::NodeInfo& n) {
  return std::string(RoleName(n.role())) + " " + std::to_string(n.rank()) + " (node " +
         std::to_string(n.node_id()) + ", pid " + std::to_string(n.pid()) + " on " + n.host() + ")";
}

}  // namespace

Scheduler::Scheduler(std::unique_ptr<Transport> transport, SchedulerOptions options)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      rpc_(transport_.get(), kSchedulerNodeId),
      created_(SteadyClock::now()) {
  rpc_.set_request_handler([this](Incoming&& request) { Handle(std::move(request)); });
}

Status Scheduler::Start() {
  if (options_.num_servers < 1 || options_.num_workers < 1) {
    return Status::InvalidArgument("a job needs at least one server and one worker (got " +
                                   std::to_string(options_.num_servers) + " servers, " +
                                   std::to_string(options_.num_workers) + " workers)");
  }
  MTPS_ASSIGN_OR_RETURN(port_, transport_->Bind(options_.host, options_.port));
  MTPS_RETURN_IF_ERROR(
      WriteFileAtomically(options_.run_dir + "/config.pbtxt", ConfigToText(options_.config)));
  std::string endpoint = "tcp://" + options_.host + ":" + std::to_string(port_);
  MTPS_RETURN_IF_ERROR(WriteFileAtomically(options_.run_dir + "/scheduler.addr", endpoint + "\n"));
  LOG(INFO) << "scheduler listening on " << endpoint << ", waiting for " << options_.num_servers
            << " servers and " << options_.num_workers << " workers";
  return Status::OK();
}

Status Scheduler::Run() {
  const config::ClusterConfig& c = options_.config.cluster();
  Deadline register_deadline = Deadline::In(c.register_timeout_ms());
  Deadline end_deadline = Deadline::In(0);
  bool ending = false;
  last_progress_write_ = SteadyClock::now();
  for (;;) {
    rpc_.Poll(Deadline::In(50));
    if (!registered_ && state_ == wire::JOB_RUNNING && register_deadline.Expired()) {
      Abort("only " + std::to_string(pending_registrations_.size()) + " of " +
            std::to_string(total_nodes()) + " nodes registered within " +
            std::to_string(c.register_timeout_ms()) + " ms");
    }
    if (state_ == wire::JOB_RUNNING) {
      CheckHeartbeats();
      MaybeWriteProgress(false);
      continue;
    }
    if (!ending) {
      // Give every live node a heartbeat round to learn the outcome.
      ending = true;
      end_deadline = Deadline::In(2 * c.heartbeat_interval_ms() + 2000);
    }
    bool all_informed = true;
    for (const auto& [id, m] : members_) all_informed = all_informed && m.informed_of_end;
    if (all_informed || end_deadline.Expired()) break;
  }
  if (state_ == wire::JOB_FINISHED) {
    LOG(INFO) << "job finished; results in " << options_.run_dir << "/summary.json";
    return Status::OK();
  }
  return Status::Aborted(abort_reason_);
}

void Scheduler::Handle(Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  if (meta.op() == wire::REGISTER) return HandleRegister(std::move(request));
  if (meta.op() == wire::PING) {
    rpc_.Reply(request, Message());
    return;
  }
  auto it = members_.find(meta.sender());
  if (!registered_ || it == members_.end() || meta.sender() == kSchedulerNodeId) {
    rpc_.ReplyError(request, Status::InvalidArgument("node " + std::to_string(meta.sender()) +
                                                     " is not a registered member of this job"));
    return;
  }
  if (meta.cluster_epoch() != epoch_) {
    rpc_.ReplyError(request,
                    Status::StaleEpoch("epoch " + std::to_string(meta.cluster_epoch()) +
                                       " is not the job's epoch " + std::to_string(epoch_)));
    return;
  }
  it->second.last_seen = SteadyClock::now();
  switch (meta.op()) {
    case wire::BARRIER:
      return HandleBarrier(std::move(request));
    case wire::HEARTBEAT:
      return HandleHeartbeat(std::move(request));
    case wire::PROGRESS:
      return HandleProgress(std::move(request));
    case wire::EVAL_REPORT:
      return HandleEvalReport(std::move(request));
    case wire::CLOCK:
      return HandleClock(std::move(request));
    default:
      rpc_.ReplyError(request, Status::InvalidArgument("the scheduler does not serve op " +
                                                       wire::Op_Name(meta.op())));
  }
}

void Scheduler::HandleRegister(Incoming&& request) {
  if (registered_ || state_ != wire::JOB_RUNNING) {
    rpc_.ReplyError(request, Status::InvalidArgument("registration is closed"));
    return;
  }
  const wire::NodeInfo& node = request.msg.meta.register_request().node();
  int expected = node.role() == wire::SERVER   ? options_.num_servers
                 : node.role() == wire::WORKER ? options_.num_workers
                                               : 0;
  if (expected == 0) {
    rpc_.ReplyError(request, Status::InvalidArgument("cannot register a node of role " +
                                                     wire::Role_Name(node.role())));
    return;
  }
  int same_role = 0;
  for (const Incoming& p : pending_registrations_) {
    if (p.msg.meta.register_request().node().role() == node.role()) ++same_role;
  }
  if (same_role >= expected) {
    rpc_.ReplyError(request,
                    Status::InvalidArgument("too many " + std::string(RoleName(node.role())) +
                                            "s: the job expects " + std::to_string(expected)));
    return;
  }
  if (node.port() <= 0 || node.port() > 65535 || node.host().empty()) {
    rpc_.ReplyError(request, Status::InvalidArgument("registration without a valid host:port"));
    return;
  }
  LOG(INFO) << "registered " << RoleName(node.role()) << " pid " << node.pid() << " at "
            << node.host() << ":" << node.port();
  pending_registrations_.push_back(std::move(request));
  if (static_cast<int>(pending_registrations_.size()) == total_nodes()) FinishRegistration();
}

void Scheduler::FinishRegistration() {
  // Ranks: requested ranks first (when valid and free), then arrival order.
  std::map<wire::Role, std::vector<bool>> taken;
  taken[wire::SERVER].assign(options_.num_servers, false);
  taken[wire::WORKER].assign(options_.num_workers, false);
  std::vector<int> rank(pending_registrations_.size(), -1);
  for (size_t i = 0; i < pending_registrations_.size(); ++i) {
    const wire::NodeInfo& n = pending_registrations_[i].msg.meta.register_request().node();
    std::vector<bool>& t = taken[n.role()];
    if (n.rank() >= 0 && n.rank() < static_cast<int>(t.size()) && !t[n.rank()]) {
      rank[i] = n.rank();
      t[n.rank()] = true;
    }
  }
  for (size_t i = 0; i < pending_registrations_.size(); ++i) {
    if (rank[i] >= 0) continue;
    std::vector<bool>& t =
        taken[pending_registrations_[i].msg.meta.register_request().node().role()];
    for (size_t r = 0; r < t.size(); ++r) {
      if (!t[r]) {
        rank[i] = static_cast<int>(r);
        t[r] = true;
        break;
      }
    }
  }
  std::random_device rd;
  epoch_ = ((static_cast<uint64_t>(rd()) << 32) | rd()) | 1;  // never 0 ("unregistered")
  rpc_.set_epoch(epoch_);

  std::vector<wire::NodeInfo> nodes;
  for (size_t i = 0; i < pending_registrations_.size(); ++i) {
    wire::NodeInfo n = pending_registrations_[i].msg.meta.register_request().node();
    n.set_rank(rank[i]);
    n.set_node_id(n.role() == wire::SERVER ? 1 + rank[i] : 1 + options_.num_servers + rank[i]);
    nodes.push_back(n);
    members_[n.node_id()] = Member{n, SteadyClock::now(), false};
  }
  // cluster.json exists before any node learns it is registered.
  registered_ = true;
  for (int r = 0; r < options_.num_workers; ++r) clocks_[r] = ClockState();
  Status written = WriteClusterJson();
  std::string config_bytes = options_.config.SerializeAsString();
  for (size_t i = 0; i < pending_registrations_.size(); ++i) {
    if (!written.ok()) {
      rpc_.ReplyError(pending_registrations_[i], written);
      continue;
    }
    Message reply;
    wire::RegisterReply* r = reply.meta.mutable_register_reply();
    *r->mutable_you() = nodes[i];
    for (const wire::NodeInfo& n : nodes) *r->add_nodes() = n;
    r->set_cluster_epoch(epoch_);
    r->set_config(config_bytes);
    rpc_.Reply(pending_registrations_[i], std::move(reply));
  }
  pending_registrations_.clear();
  if (!written.ok()) Abort("cannot write cluster.json: " + written.message());
  LOG(INFO) << "all " << total_nodes() << " nodes registered; cluster epoch " << epoch_;
}

void Scheduler::HandleBarrier(Incoming&& request) {
  const wire::Barrier& b = request.msg.meta.barrier();
  if (b.name().empty() || b.expected() <= 0 || b.expected() > total_nodes()) {
    rpc_.ReplyError(request,
                    Status::InvalidArgument("barrier needs a name and 1.." +
                                            std::to_string(total_nodes()) + " participants"));
    return;
  }
  if (completed_barriers_.count(b.name()) != 0) {
    rpc_.ReplyError(request,
                    Status::InvalidArgument("barrier '" + b.name() + "' already completed"));
    return;
  }
  BarrierState& state = barriers_[b.name()];
  if (state.expected == 0) state.expected = b.expected();
  if (state.expected != b.expected()) {
    rpc_.ReplyError(request, Status::InvalidArgument("barrier '" + b.name() + "' expects " +
                                                     std::to_string(state.expected) +
                                                     " participants, this node says " +
                                                     std::to_string(b.expected())));
    return;
  }
  // A node arriving again (a resend) replaces its earlier arrival.
  int sender = request.msg.meta.sender();
  for (Incoming& w : state.waiting) {
    if (w.msg.meta.sender() == sender) {
      w = std::move(request);
      return;
    }
  }
  state.waiting.push_back(std::move(request));
  if (static_cast<int>(state.waiting.size()) < state.expected) return;

  std::vector<Incoming> waiting = std::move(state.waiting);
  std::string name = b.name();
  barriers_.erase(name);
  completed_barriers_.insert(name);
  Status outcome = Status::OK();
  if (name == "start") train_start_ = SteadyClock::now();
  if (name == "trained") {
    train_end_ = SteadyClock::now();
    MaybeWriteProgress(true);
  }
  if (name == "end") {
    outcome = WriteSummary();
    if (outcome.ok()) {
      state_ = wire::JOB_FINISHED;
      for (const Incoming& w : waiting) members_[w.msg.meta.sender()].informed_of_end = true;
    }
  }
  for (const Incoming& w : waiting) {
    if (outcome.ok()) {
      rpc_.Reply(w, Message());
    } else {
      rpc_.ReplyError(w, outcome);
    }
  }
  if (!outcome.ok()) Abort("cannot complete the job: " + outcome.message());
}

void Scheduler::HandleHeartbeat(Incoming&& request) {
  Message reply;
  reply.meta.set_job_state(state_);
  if (state_ == wire::JOB_ABORTED) reply.meta.set_status_message(abort_reason_);
  if (state_ != wire::JOB_RUNNING) members_[request.msg.meta.sender()].informed_of_end = true;
  rpc_.Reply(request, std::move(reply));
}

void Scheduler::HandleProgress(Incoming&& request) {
  const Member& m = members_.at(request.msg.meta.sender());
  const wire::Progress& p = request.msg.meta.progress();
  if (m.info.role() != wire::WORKER || p.loss_names_size() != p.mean_loss_size()) {
    rpc_.ReplyError(request, Status::InvalidArgument("malformed progress report"));
    return;
  }
  WorkerProgress& wp = progress_[m.info.rank()];
  wp.examples = p.examples();
  wp.loss.assign(p.mean_loss().begin(), p.mean_loss().end());
  wp.loss_names.assign(p.loss_names().begin(), p.loss_names().end());
  rpc_.Reply(request, Message());
}

void Scheduler::HandleEvalReport(Incoming&& request) {
  const Member& m = members_.at(request.msg.meta.sender());
  const Message& msg = request.msg;
  const wire::EvalReport& r = msg.meta.eval_report();
  Status s;
  if (m.info.role() != wire::WORKER) s = Status::InvalidArgument("only workers report evaluations");
  if (s.ok() && msg.payloads.size() != 2 * static_cast<size_t>(r.tasks_size())) {
    s = Status::InvalidArgument("EVAL_REPORT with " + std::to_string(r.tasks_size()) +
                                " tasks needs " + std::to_string(2 * r.tasks_size()) +
                                " payload frames, got " + std::to_string(msg.payloads.size()));
  }
  const int bins = options_.config.eval().auc_bins();
  if (s.ok() && r.auc_bins() != bins) {
    s = Status::InvalidArgument("EVAL_REPORT with auc_bins " + std::to_string(r.auc_bins()) +
                                ", the job uses " + std::to_string(bins));
  }
  if (s.ok() && bins > 0 && r.logloss_sum_size() != r.tasks_size()) {
    s = Status::InvalidArgument("EVAL_REPORT needs one logloss_sum per task");
  }
  for (size_t i = 0; s.ok() && i < msg.payloads.size(); i += 2) {
    const Payload& a = msg.payloads[i];
    const Payload& b = msg.payloads[i + 1];
    bool good = bins > 0
                    ? (a.dtype() == wire::U64 && b.dtype() == wire::U64 &&
                       a.count() == static_cast<size_t>(bins) && b.count() == a.count())
                    : (a.dtype() == wire::F32 && b.dtype() == wire::F32 && a.count() == b.count());
    if (!good) {
      s = Status::InvalidArgument(
          "EVAL_REPORT task " + std::to_string(i / 2) +
          (bins > 0 ? ": needs two U64 histograms of " + std::to_string(bins) + " bins"
                    : ": scores and labels must be F32 arrays of equal length"));
    }
  }
  if (!s.ok()) {
    rpc_.ReplyError(request, s);
    return;
  }
  int rank = m.info.rank();
  rpc_.Reply(request, Message());
  eval_reports_[rank] = std::move(request.msg);
}

int64_t Scheduler::MinClock() const {
  int64_t min = std::numeric_limits<int64_t>::max();
  for (const auto& [rank, c] : clocks_) {
    if (!c.finished) min = std::min(min, c.clock);
  }
  return min;
}

void Scheduler::HandleClock(Incoming&& request) {
  const Member& m = members_.at(request.msg.meta.sender());
  if (m.info.role() != wire::WORKER) {
    rpc_.ReplyError(request, Status::InvalidArgument("only workers report clocks"));
    return;
  }
  const wire::Clock& c = request.msg.meta.clock();
  // Clocks only move forward (a report may overtake an older one).
  ClockState& state = clocks_[m.info.rank()];
  state.clock = std::max(state.clock, c.clock());
  if (c.wait_for() < 0) state.started = std::max(state.started, c.started());
  state.finished = state.finished || c.finished();
  const int64_t min = MinClock();
  // How far ahead of the slowest unfinished worker's clock the reporter's
  // latest batch started: BOUNDED_STALENESS keeps this <= staleness, BSP at
  // 0. Only plain reports count (a waiting request is not running yet).
  if (c.wait_for() < 0 && !state.finished && min != std::numeric_limits<int64_t>::max()) {
    max_clock_gap_ = std::max(max_clock_gap_, state.started - min);
  }
  auto answer = [this, min](const Incoming& w) {
    Message reply;
    reply.meta.mutable_clock()->set_min_clock(min);
    rpc_.Reply(w, std::move(reply));
  };
  if (c.wait_for() <= min) {
    answer(request);
  } else {
    clock_waits_.emplace_back(std::move(request), c.wait_for());
  }
  // A clock moved: release the waits it satisfies.
  for (size_t i = 0; i < clock_waits_.size();) {
    if (clock_waits_[i].second <= min) {
      answer(clock_waits_[i].first);
      clock_waits_.erase(clock_waits_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void Scheduler::Abort(const std::string& why) {
  if (state_ != wire::JOB_RUNNING) return;
  LOG(ERROR) << "aborting the job: " << why;
  state_ = wire::JOB_ABORTED;
  abort_reason_ = why;
  Status error = Status::Aborted(why);
  for (const Incoming& p : pending_registrations_) rpc_.ReplyError(p, error);
  pending_registrations_.clear();
  for (auto& [name, b] : barriers_) {
    for (const Incoming& w : b.waiting) {
      rpc_.ReplyError(w, error);
      members_[w.msg.meta.sender()].informed_of_end = true;
    }
  }
  barriers_.clear();
  for (const auto& [w, wait_for] : clock_waits_) rpc_.ReplyError(w, error);
  clock_waits_.clear();
}

void Scheduler::CheckHeartbeats() {
  if (!registered_) return;
  auto now = SteadyClock::now();
  auto limit = std::chrono::milliseconds(options_.config.cluster().heartbeat_timeout_ms());
  for (const auto& [id, m] : members_) {
    if (now - m.last_seen > limit) {
      Abort(NodeLabel(m.info) + " sent nothing for " +
            std::to_string(options_.config.cluster().heartbeat_timeout_ms()) + " ms");
      return;
    }
  }
}

void Scheduler::MaybeWriteProgress(bool force) {
  auto now = SteadyClock::now();
  double since = std::chrono::duration<double>(now - last_progress_write_).count();
  if (progress_.empty() || (!force && since < options_.config.train().progress_interval_sec())) {
    return;
  }
  // After the "trained" barrier (which writes the final line) nothing moves.
  if (!force && completed_barriers_.count("trained") != 0) return;
  int64_t examples = 0;
  std::vector<std::string> names;
  std::vector<double> loss;
  for (const auto& [rank, p] : progress_) {
    examples += p.examples;
    if (names.empty()) {
      names = p.loss_names;
      loss.assign(names.size(), 0.0);
    }
    for (size_t i = 0; i < loss.size() && i < p.loss.size(); ++i) {
      loss[i] += p.loss[i] / static_cast<double>(progress_.size());
    }
  }
  double rate = since > 0 ? static_cast<double>(examples - last_progress_examples_) / since : 0.0;
  int workers_done = static_cast<int>(
      completed_barriers_.count("trained") != 0
          ? options_.num_workers
          : (barriers_.count("trained") != 0 ? barriers_["trained"].waiting.size() : 0));
  std::ostringstream line;
  line << "{\"t\": " << JsonNumber(SecondsSince(created_)) << ", \"examples\": " << examples
       << ", \"examples_per_sec\": " << JsonNumber(rate) << ", \"loss\": {";
  for (size_t i = 0; i < names.size(); ++i) {
    line << (i ? ", " : "") << JsonString(names[i]) << ": " << JsonNumber(loss[i]);
  }
  line << "}, \"workers_done\": " << workers_done << ", \"num_workers\": " << options_.num_workers
       << "}";
  Status s = AppendLine(options_.run_dir + "/progress.jsonl", line.str());
  if (!s.ok()) {
    LOG_EVERY_N(WARNING, 10) << s;
  }
  last_progress_write_ = now;
  last_progress_examples_ = examples;
}

Status Scheduler::WriteSummary() {
  if (static_cast<int>(eval_reports_.size()) != options_.num_workers) {
    return Status::Internal(std::to_string(eval_reports_.size()) + " of " +
                            std::to_string(options_.num_workers) +
                            " workers sent their evaluation before the end barrier");
  }
  const wire::EvalReport& first = eval_reports_.begin()->second.meta.eval_report();
  std::vector<std::string> tasks(first.tasks().begin(), first.tasks().end());
  const int bins = options_.config.eval().auc_bins();
  std::vector<std::vector<float>> scores(tasks.size()), labels(tasks.size());
  std::vector<ScoreHistogram> histograms;
  if (bins > 0) histograms.assign(tasks.size(), ScoreHistogram(bins));
  int64_t train_examples = 0;
  std::vector<float> scratch;
  std::vector<uint64_t> scratch_u64;
  for (const auto& [rank, msg] : eval_reports_) {
    const wire::EvalReport& r = msg.meta.eval_report();
    if (std::vector<std::string>(r.tasks().begin(), r.tasks().end()) != tasks) {
      return Status::InvalidArgument("worker " + std::to_string(rank) +
                                     " reported different evaluation tasks");
    }
    train_examples += r.train_examples();
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
  double seconds = std::chrono::duration<double>(train_end_ - train_start_).count();
  std::ostringstream json;
  json << "{\n  \"model\": " << JsonString(ModelName(options_.config.model()))
       << ",\n  \"eval\": {";
  for (size_t t = 0; t < tasks.size(); ++t) {
    const bool binned = bins > 0;
    const double auc = binned ? histograms[t].Auc() : Auc(scores[t], labels[t]);
    const double logloss = binned ? histograms[t].LogLoss() : LogLoss(scores[t], labels[t]);
    const int64_t n = binned ? histograms[t].examples() : static_cast<int64_t>(scores[t].size());
    json << (t ? "," : "") << "\n    " << JsonString(tasks[t]) << ": {\"auc\": " << JsonNumber(auc)
         << ", \"logloss\": " << JsonNumber(logloss) << ", \"examples\": " << n << "}";
    LOG(INFO) << "eval " << tasks[t] << ": auc " << auc << ", logloss " << logloss << " over " << n
              << " examples" << (binned ? " (binned AUC)" : "");
  }
  json << "\n  },\n  \"train\": {\"examples\": " << train_examples
       << ", \"seconds\": " << JsonNumber(seconds) << ", \"examples_per_sec\": "
       << JsonNumber(seconds > 0 ? static_cast<double>(train_examples) / seconds : 0.0)
       << "},\n  \"consistency\": {\"mode\": "
       << JsonString(config::TrainConfig::Consistency_Name(options_.config.train().consistency()))
       << ", \"staleness\": " << options_.config.train().staleness()
       << ", \"max_clock_gap\": " << max_clock_gap_
       << "},\n  \"cluster\": {\"servers\": " << options_.num_servers
       << ", \"workers\": " << options_.num_workers << "}\n}\n";
  return WriteFileAtomically(options_.run_dir + "/summary.json", json.str());
}

Status Scheduler::WriteClusterJson() const {
  std::ostringstream json;
  json << "{\n  \"cluster_epoch\": " << epoch_ << ",\n  \"nodes\": [\n";
  json << "    {\"role\": \"scheduler\", \"rank\": 0, \"node_id\": " << kSchedulerNodeId
       << ", \"host\": " << JsonString(options_.host) << ", \"port\": " << port_
       << ", \"pid\": " << getpid() << "}";
  for (const auto& [id, m] : members_) {
    json << ",\n    {\"role\": \"" << RoleName(m.info.role()) << "\", \"rank\": " << m.info.rank()
         << ", \"node_id\": " << id << ", \"host\": " << JsonString(m.info.host())
         << ", \"port\": " << m.info.port() << ", \"pid\": " << m.info.pid() << "}";
  }
  json << "\n  ]\n}\n";
  return WriteFileAtomically(options_.run_dir + "/cluster.json", json.str());
}

}  // namespace mtps
