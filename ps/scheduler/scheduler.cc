// The scheduler's control loop, request dispatch and barriers (see
// ps/scheduler/scheduler.h).
#include "ps/scheduler/scheduler.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/base/durable_file.h"
#include "common/base/file_util.h"
#include "common/config/config.h"
#include "common/net/curve.h"

namespace mtps {
namespace {

std::string CheckpointRoot(const SchedulerOptions& o) {
  const std::string& dir = o.config.checkpoint().dir();
  if (dir.empty()) return o.run_dir + "/checkpoints";
  if (dir[0] == '/') return dir;
  return o.run_dir + "/" + dir;
}

CheckpointerOptions MakeCheckpointerOptions(const SchedulerOptions& o) {
  CheckpointerOptions c;
  c.config = o.config;
  c.root = CheckpointRoot(o);
  c.num_servers = o.num_servers;
  c.num_workers = o.num_workers;
  return c;
}

// A checkpoint's sections that give its files their meaning: a resumed job
// must agree on them (it may change train, cluster, eval and checkpoint).
std::string FrozenSections(const config::Config& c) {
  return c.data().SerializeAsString() + "|" + c.model().SerializeAsString() + "|" +
         c.server().SerializeAsString();
}

}  // namespace

Scheduler::Scheduler(std::unique_ptr<Transport> transport, SchedulerOptions options)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      rpc_(transport_.get(), kSchedulerNodeId),
      membership_(options_.num_servers, options_.num_workers),
      clocks_(options_.num_workers),
      results_(options_.config, options_.num_servers, options_.num_workers,
               ResultFiles(options_.run_dir, options_.result_stream)),
      checkpointer_(&rpc_, MakeCheckpointerOptions(options_)),
      metrics_(options_.num_servers, options_.num_workers, options_.config.train().epochs(),
               options_.restarts) {
  rpc_.set_request_handler([this](Incoming&& request) { Handle(std::move(request)); });
  rpc_.set_authorizer([this](const Incoming& request) { return Authorize(request); });
  // Resent requests reach the handlers once; copies get the same answer.
  rpc_.set_dedupe(true);
  rpc_.set_retry(RetryPolicyFrom(options_.config.cluster().retry()));
  checkpointer_.set_train_seconds([this] { return TrainSeconds(); });
  checkpointer_.set_on_begin([this] { ReleaseClockWaits(); });
  checkpointer_.set_metrics(metrics_.checkpoint_pause(), metrics_.checkpoint_write());
}

Status Scheduler::ChooseCheckpoint() {
  MTPS_RETURN_IF_ERROR(checkpointer_.Init());
  if (!options_.resume) {
    if (checkpointer_.enabled() && !checkpointer_.store().ListIds().empty()) {
      // Never mix two runs' checkpoints: a restart would resume the old one.
      return Status::InvalidArgument(
          "checkpoint directory " + checkpointer_.store().root() +
          " holds checkpoints of an earlier run: pass --resume to continue it, or remove them");
    }
    return Status::OK();
  }
  if (!checkpointer_.enabled()) {
    return Status::InvalidArgument("--resume with checkpoint.enabled false: nothing to resume");
  }
  auto manifest = checkpointer_.store().LatestGood(&skipped_checkpoints_);
  if (!manifest.ok()) {
    LOG(WARNING) << "resume: " << manifest.status().message() << "; starting afresh";
    return Status::OK();
  }
  const checkpoint::Manifest& m = *manifest;
  if (m.num_servers() != options_.num_servers || m.num_workers() != options_.num_workers ||
      m.shard_threads() != options_.config.server().shard_threads()) {
    return Status::InvalidArgument(
        "cannot resume from checkpoint " + std::to_string(m.id()) + ": it was taken with " +
        std::to_string(m.num_servers()) + " servers, " + std::to_string(m.num_workers()) +
        " workers and " + std::to_string(m.shard_threads()) + " shard threads, this job has " +
        std::to_string(options_.num_servers) + ", " + std::to_string(options_.num_workers) +
        " and " + std::to_string(options_.config.server().shard_threads()));
  }
  config::Config saved;
  if (!saved.ParseFromString(m.config()) ||
      FrozenSections(saved) != FrozenSections(options_.config)) {
    return Status::InvalidArgument("cannot resume from checkpoint " + std::to_string(m.id()) +
                                   ": its data, model or server config differs from this job's");
  }
  LOG(INFO) << "resuming from checkpoint " << m.id() << " (step " << m.step() << ", taken for "
            << m.reason() << ") in " << checkpointer_.store().DirFor(m.id());
  checkpointer_.ResumeFrom(m);
  restore_ = m;
  return Status::OK();
}

Status Scheduler::FillRestore(const wire::NodeInfo& node, wire::Restore* restore) const {
  const checkpoint::Manifest& m = *restore_;
  const std::string dir = checkpointer_.store().DirFor(m.id());
  restore->set_checkpoint_id(m.id());
  restore->set_dir(dir);
  restore->set_step(m.step());
  // A server reloads its own partition and, with replicas, the one it backs
  // up (the previous server's).
  std::vector<std::string> prefixes = {(node.role() == wire::SERVER ? "server-" : "worker-") +
                                       std::to_string(node.rank()) + "."};
  if (node.role() == wire::SERVER && replicated() && options_.num_servers > 1) {
    prefixes.push_back(
        "server-" +
        std::to_string((node.rank() + options_.num_servers - 1) % options_.num_servers) + ".");
  }
  for (const wire::CheckpointFile& f : m.files()) {
    bool mine = false;
    for (const std::string& prefix : prefixes) {
      mine = mine || f.name().compare(0, prefix.size(), prefix) == 0;
    }
    if (!mine) continue;
    if (node.role() == wire::SERVER) {
      *restore->add_files() = f;
    } else {
      MTPS_ASSIGN_OR_RETURN(std::string state,
                            ReadVerifiedFile(dir + "/" + f.name(), f.size(), f.crc32()));
      restore->set_worker_state(std::move(state));
    }
  }
  if (node.role() == wire::WORKER && !restore->has_worker_state()) {
    return Status::Corruption(dir + ": no state of worker " + std::to_string(node.rank()));
  }
  return Status::OK();
}

double Scheduler::TrainSeconds() const {
  double before = restore_ ? restore_->scheduler().train_seconds() : 0.0;
  if (!training_started_) return before;
  const auto end = trained_ ? train_end_ : SteadyClock::now();
  return before + std::chrono::duration<double>(end - train_start_).count();
}

void Scheduler::ReadSignals() {
  if (options_.signal_fd < 0) return;
  signalfd_siginfo info{};
  while (::read(options_.signal_fd, &info, sizeof(info)) == sizeof(info)) {
    const int sig = static_cast<int>(info.ssi_signo);
    if (state_ != wire::JOB_RUNNING) continue;
    if (sig == SIGUSR1) {
      LOG(INFO) << "SIGUSR1: taking a checkpoint";
      if (phase_ == JobPhase::kTraining) {
        RequestCheckpoint("request");
      } else {
        LOG(INFO) << "not training (phase " << JobPhaseName(phase_) << "): no checkpoint";
      }
      continue;
    }
    const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (stop_requested_ || phase_ != JobPhase::kTraining || !checkpointer_.enabled()) {
      Abort("stopped by " + name);
      continue;
    }
    stop_requested_ = true;
    LOG(INFO) << name << ": taking a checkpoint, then stopping";
    RequestCheckpoint(
        "signal",
        [this, name](const Status& s) {
          Abort("stopped by " + name +
                (s.ok() ? " after a checkpoint" : " (checkpoint failed: " + s.message() + ")"));
        },
        /*after_commit=*/true);
  }
}

void Scheduler::RequestCheckpoint(const std::string& reason, Checkpointer::Callback on_cut,
                                  bool after_commit) {
  checkpointer_.Request(reason, std::move(on_cut), after_commit);
}

void Scheduler::ReleaseClockWaits() {
  // Workers waiting for a clock come out, see the request and take part.
  const int64_t min = clocks_.MinClock();
  for (const Incoming& w : clocks_.TakeAll()) {
    Message reply;
    reply.meta.mutable_clock()->set_min_clock(min);
    reply.meta.set_checkpoint_request(checkpointer_.requested());
    rpc_.Reply(w, std::move(reply));
  }
}

Status Scheduler::Start() {
  if (options_.num_servers < 1 || options_.num_workers < 1) {
    return Status::InvalidArgument("a job needs at least one server and one worker (got " +
                                   std::to_string(options_.num_servers) + " servers, " +
                                   std::to_string(options_.num_workers) + " workers)");
  }
  if (replicated() && options_.num_servers < 2) {
    return Status::InvalidArgument(
        "server.replicas: a backup lives on another server; this job has only " +
        std::to_string(options_.num_servers));
  }
  MTPS_RETURN_IF_ERROR(ChooseCheckpoint());
  MTPS_ASSIGN_OR_RETURN(port_, transport_->Bind(options_.host, options_.port));
  if (const int metrics_port = options_.config.cluster().metrics_port(); metrics_port >= 0) {
    auto bound = metrics_.StartServer(options_.host, metrics_port);
    if (!bound.ok()) {
      return Status(bound.status().code(), "cluster.metrics_port " + std::to_string(metrics_port) +
                                               ": " + bound.status().message());
    }
    // An IPv6 address goes in brackets in a URL.
    const std::string& host = advertised_host();
    const bool v6 = host.find(':') != std::string::npos;
    metrics_url_ =
        "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(*bound) + "/metrics";
    LOG(INFO) << "cluster metrics at " << metrics_url_;
  }
  MTPS_RETURN_IF_ERROR(results_.files().Write("config.pbtxt", ConfigToText(options_.config)));
  std::string endpoint = "tcp://" + advertised_host() + ":" + std::to_string(port_);
  MTPS_RETURN_IF_ERROR(results_.files().Write("scheduler.addr", endpoint + "\n"));
  LOG(INFO) << "scheduler listening on " << endpoint << ", waiting for " << options_.num_servers
            << " servers and " << options_.num_workers << " workers";
  return Status::OK();
}

Status Scheduler::Run() {
  const config::ClusterConfig& c = options_.config.cluster();
  Deadline register_deadline = Deadline::In(c.register_timeout_ms());
  Deadline end_deadline = Deadline::In(0);
  bool ending = false;
  results_.StartProgressClock(SteadyClock::now());
  for (;;) {
    rpc_.Poll(Deadline::In(50));
    ReadSignals();
    checkpointer_.Poll(state_ == wire::JOB_RUNNING && phase_ == JobPhase::kTraining);
    if (!membership_.registered() && state_ == wire::JOB_RUNNING && register_deadline.Expired()) {
      Abort("only " + std::to_string(membership_.num_pending()) + " of " +
            std::to_string(total_nodes()) + " nodes registered within " +
            std::to_string(c.register_timeout_ms()) + " ms");
    }
    metrics_.MaybePublish(false);
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
    if (membership_.AllInformed() || end_deadline.Expired()) break;
  }
  metrics_.MaybePublish(true);
  metrics_.StopServer(1000);
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
  if (meta.op() == wire::LEAVE) {
    // The one sure sign a node knows the outcome: a reply telling it may
    // have been lost on the way.
    membership_.MarkInformed(meta.sender());
    rpc_.Reply(request, Message());
    return;
  }
  Member* sender = membership_.Find(meta.sender());
  if (!membership_.registered() || sender == nullptr || meta.sender() == kSchedulerNodeId) {
    rpc_.ReplyError(request, Status::InvalidArgument("node " + std::to_string(meta.sender()) +
                                                     " is not a registered member of this job"));
    return;
  }
  if (sender->dead) {
    rpc_.ReplyError(request, Status::Aborted(NodeLabel(sender->info) +
                                             " was declared dead; its partitions moved"));
    return;
  }
  // A node of an older epoch of this job (it has not heard of a failover
  // yet) learns the new one from its heartbeat reply; its other requests are
  // refused until then, and resent.
  const bool older_epoch = meta.cluster_epoch() != rpc_.epoch() &&
                           epochs_.count(meta.cluster_epoch()) != 0 &&
                           (meta.op() == wire::HEARTBEAT || meta.op() == wire::LEAVE);
  if (meta.cluster_epoch() != rpc_.epoch() && !older_epoch) {
    rpc_.ReplyError(request,
                    Status::StaleEpoch("epoch " + std::to_string(meta.cluster_epoch()) +
                                       " is not the job's epoch " + std::to_string(rpc_.epoch())));
    return;
  }
  sender->last_seen = SteadyClock::now();
  switch (meta.op()) {
    case wire::BARRIER:
      return HandleBarrier(std::move(request));
    case wire::HEARTBEAT:
      return HandleHeartbeat(*sender, std::move(request));
    case wire::PROGRESS:
      return HandleProgress(*sender, std::move(request));
    case wire::EVAL_REPORT:
      return HandleEvalReport(*sender, std::move(request));
    case wire::CLOCK:
      return HandleClock(*sender, std::move(request));
    case wire::CHECKPOINT_READY:
      return HandleCheckpointReady(*sender, std::move(request));
    case wire::CHECKPOINT_FILES:
      return HandleCheckpointFiles(*sender, std::move(request));
    case wire::REJOINED:
      return HandleRejoined(*sender, std::move(request));
    default:
      rpc_.ReplyError(request, Status::InvalidArgument("the scheduler does not serve op " +
                                                       wire::Op_Name(meta.op())));
  }
}

Status Scheduler::Authorize(const Incoming& request) {
  if (request.authenticated_as.empty()) return Status::OK();  // no CURVE
  const wire::Meta& meta = request.msg.meta;
  std::string expected;
  if (meta.op() == wire::REGISTER) {
    // A node registers as the rank its key was made for.
    const wire::NodeInfo& node = meta.register_request().node();
    if (node.rank() < 0) {
      return Status::PermissionDenied("with cluster.curve a node registers with its rank (--rank)");
    }
    expected = CurveNodeName(node.role(), node.rank());
  } else if (const Membership::Member* m = membership_.Find(meta.sender())) {
    expected = CurveNodeName(m->info.role(), m->info.rank());
  }
  return CheckSpeaksFor(
      request.authenticated_as, expected,
      meta.op() == wire::REGISTER ? expected : "node " + std::to_string(meta.sender()));
}

void Scheduler::HandleRegister(Incoming&& request) {
  if (membership_.registered() && replicated() && state_ == wire::JOB_RUNNING) {
    return HandleRejoin(std::move(request));
  }
  if (membership_.registered() || state_ != wire::JOB_RUNNING) {
    rpc_.ReplyError(request, Status::InvalidArgument("registration is closed"));
    return;
  }
  Status accepted = membership_.CheckRegistration(request);
  if (!accepted.ok()) {
    rpc_.ReplyError(request, accepted);
    return;
  }
  const wire::NodeInfo& node = request.msg.meta.register_request().node();
  LOG(INFO) << "registered " << RoleName(node.role()) << " pid " << node.pid() << " at "
            << node.host() << ":" << node.port();
  membership_.AddPending(std::move(request));
  if (membership_.all_pending()) FinishRegistration();
}

void Scheduler::FinishRegistration() {
  const uint64_t epoch = NewClusterEpoch();
  rpc_.set_epoch(epoch);
  epochs_.insert(epoch);
  std::vector<wire::NodeInfo> nodes = membership_.Register(epoch, SteadyClock::now());
  std::vector<Incoming> pending = membership_.TakePending();
  // cluster.json exists before any node learns it is registered.
  Status written = WriteClusterJson();
  std::string config_bytes = options_.config.SerializeAsString();
  // The scheduler sends SNAPSHOT requests to the servers.
  std::vector<int> server_ids(options_.num_servers, -1);
  for (const wire::NodeInfo& n : nodes) {
    if (n.role() != wire::SERVER) continue;
    server_ids[n.rank()] = n.node_id();
    transport_->NamePeer(n.node_id(), CurveNodeName(n.role(), n.rank()));
    Status c =
        transport_->Connect(n.node_id(), "tcp://" + n.host() + ":" + std::to_string(n.port()));
    if (written.ok() && !c.ok()) written = c;
  }
  checkpointer_.SetServers(server_ids);
  server_ids_ = server_ids;
  if (replicated()) {
    // Partition p: primary server p, backup the next one around the ring.
    const int n = static_cast<int>(server_ids.size());
    for (int p = 0; p < n; ++p) {
      wire::PartitionMap::Placement* place = partition_map_.add_partitions();
      place->set_primary(server_ids[p]);
      place->set_backup(server_ids[(p + 1) % n]);
    }
  }
  for (size_t i = 0; i < pending.size(); ++i) {
    if (!written.ok()) {
      rpc_.ReplyError(pending[i], written);
      continue;
    }
    wire::Restore restore;
    if (restore_) {
      Status r = FillRestore(nodes[i], &restore);
      if (!r.ok()) {
        written = r;
        rpc_.ReplyError(pending[i], r);
        continue;
      }
    }
    Message reply;
    wire::RegisterReply* r = reply.meta.mutable_register_reply();
    *r->mutable_you() = nodes[i];
    for (const wire::NodeInfo& n : nodes) *r->add_nodes() = n;
    r->set_cluster_epoch(epoch);
    r->set_config(config_bytes);
    if (replicated()) *reply.meta.mutable_partition_map() = partition_map_;
    if (restore_) *r->mutable_restore() = std::move(restore);
    rpc_.Reply(pending[i], std::move(reply));
  }
  if (!written.ok()) Abort("cannot start the job: " + written.message());
  LOG(INFO) << "all " << total_nodes() << " nodes registered; cluster epoch " << epoch;
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
  if (name == JobBarrierName(JobBarrier::kEnd)) {
    // Every push is answered by now: the servers' counts are final.
    auto held = std::make_shared<std::vector<Incoming>>(std::move(waiting));
    CollectUpdateCounts([this, held, name] { CompleteBarrier(name, std::move(*held)); });
    return;
  }
  CompleteBarrier(name, std::move(waiting));
}

void Scheduler::CollectUpdateCounts(std::function<void()> then) {
  std::vector<size_t> live;
  for (size_t rank = 0; rank < server_ids_.size(); ++rank) {
    const Member* m = membership_.Find(server_ids_[rank]);
    if (m != nullptr && !m->dead) live.push_back(rank);
  }
  auto remaining = std::make_shared<int>(static_cast<int>(live.size()));
  auto done = std::make_shared<std::function<void()>>(std::move(then));
  if (*remaining == 0) return (*done)();
  for (size_t rank : live) {
    auto record = [this, rank, remaining, done](StatusOr<Message>&& reply) {
      if (reply.ok()) {
        update_counts_[static_cast<int>(rank)] = reply->meta.update_counts();
      } else {
        update_count_errors_.push_back("server " + std::to_string(rank) + ": " +
                                       reply.status().message());
        LOG(WARNING) << "no update counts from server " << rank << ": " << reply.status();
      }
      if (--*remaining == 0) (*done)();
    };
    Status s = rpc_.StartAsync(server_ids_[rank], Message(wire::UPDATE_COUNTS),
                               options_.config.cluster().request_timeout_ms(), record);
    if (!s.ok()) record(s);
  }
}

Json Scheduler::UpdatesJson() const {
  Json u;
  int64_t applied = 0, duplicates = 0, pull_copies = 0, nonfinite_rejected = 0,
          nonfinite_skipped = 0;
  for (const auto& [rank, c] : update_counts_) {
    applied += c.applied();
    duplicates += c.duplicates_dropped();
    pull_copies += c.pulls_deduplicated();
    nonfinite_rejected += c.nonfinite_pushes_rejected();
    nonfinite_skipped += c.nonfinite_rows_skipped();
  }
  const JobResults::WorkerPushes w = results_.SumWorkerPushes();
  u["acknowledged"] = w.acknowledged;
  u["applied"] = applied;
  u["duplicates_dropped"] = duplicates;
  u["resent"] = w.resent;
  u["pull_copies_dropped"] = pull_copies;
  u["nonfinite_pushes_rejected"] = nonfinite_rejected;
  u["nonfinite_rows_skipped"] = nonfinite_skipped;
  u["servers_counted"] = static_cast<int64_t>(update_counts_.size());
  if (!update_count_errors_.empty()) u["errors"] = update_count_errors_;
  return u;
}

void Scheduler::CompleteBarrier(const std::string& name, std::vector<Incoming> waiting) {
  Status outcome = OnPhaseBarrier(name, waiting);
  if (outcome.ok() && name == JobBarrierName(JobBarrier::kTrained) && checkpointer_.enabled() &&
      options_.config.checkpoint().at_epoch_end() &&
      !(restore_ && restore_->scheduler().trained())) {
    if (!checkpointer_.HasAllFinalStates()) {
      // Only workers that left training with a final clock report can be
      // resumed after it; without them there is no final checkpoint.
      LOG(WARNING) << "no final checkpoint: not every worker reported its final state";
      for (const Incoming& w : waiting) rpc_.Reply(w, Message());
      return;
    }
    // The final checkpoint: workers wait in the barrier until it is cut.
    auto held = std::make_shared<std::vector<Incoming>>(std::move(waiting));
    // It waits for the commit: a finished job has its final checkpoint.
    RequestCheckpoint(
        "trained",
        [this, held](const Status&) {
          for (const Incoming& w : *held) rpc_.Reply(w, Message());
        },
        /*after_commit=*/true);
    return;
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

Status Scheduler::OnPhaseBarrier(const std::string& name, const std::vector<Incoming>& waiting) {
  std::optional<JobBarrier> barrier = JobBarrierFromName(name);
  if (!barrier) return Status::OK();
  phase_ = std::max(phase_, PhaseAfter(*barrier));
  VLOG(1) << "barrier '" << name << "' completed; job phase " << JobPhaseName(phase_);
  switch (*barrier) {
    case JobBarrier::kStart: {
      train_start_ = SteadyClock::now();
      training_started_ = true;
      Json fields;
      if (restore_) {
        fields["resumed_from_checkpoint"] = restore_->id();
        fields["checkpoint_step"] = restore_->step();
      }
      results_.AppendEvent("training", std::move(fields));
      return Status::OK();
    }
    case JobBarrier::kTrained:
      train_end_ = SteadyClock::now();
      trained_ = true;
      MaybeWriteProgress(true);
      return Status::OK();
    case JobBarrier::kEnd: {
      Json extra;
      extra["checkpoints"] = checkpointer_.SummaryJson();
      if (counter_value_ >= 0) {
        extra["counter"] = counter_value_;
        // The oracle's other side: every batch pushed the counter row once.
        extra["counter_acknowledged"] = results_.SumWorkerPushes().batches_acknowledged;
      }
      extra["updates"] = UpdatesJson();
      if (replicated()) {
        extra["failovers"] = failovers_;
        extra["rejoins"] = rejoins_;
      }
      if (restore_) {
        Json r;
        r["checkpoint_id"] = restore_->id();
        r["step"] = restore_->step();
        r["skipped"] = skipped_checkpoints_;
        extra["resumed_from"] = r;
      }
      MTPS_RETURN_IF_ERROR(results_.WriteSummary(TrainSeconds(), clocks_.max_clock_gap(), extra));
      state_ = wire::JOB_FINISHED;
      return Status::OK();
    }
  }
  return Status::OK();
}

void Scheduler::HandleHeartbeat(const Member& sender, Incoming&& request) {
  if (request.msg.meta.has_metrics()) {
    // A bad snapshot is dropped; the heartbeat still counts.
    Status s = metrics_.Record(sender.info.role(), sender.info.rank(), request.msg.meta.metrics());
    if (!s.ok()) {
      LOG_EVERY_N(WARNING, 20) << s;
    }
  }
  Message reply;
  reply.meta.set_job_state(state_);
  if (state_ == wire::JOB_ABORTED) reply.meta.set_status_message(abort_reason_);
  reply.meta.set_checkpoint_request(checkpointer_.requested());
  if (replicated() && request.msg.meta.cluster_epoch() != rpc_.epoch()) {
    *reply.meta.mutable_partition_map() = partition_map_;  // and the reply's epoch is the new one
  }
  rpc_.Reply(request, std::move(reply));
}

void Scheduler::HandleProgress(const Member& sender, Incoming&& request) {
  const wire::Progress& p = request.msg.meta.progress();
  Status s = sender.info.role() == wire::WORKER
                 ? results_.CheckProgress(p)
                 : Status::InvalidArgument("only workers report progress");
  if (!s.ok()) {
    rpc_.ReplyError(request, s);
    return;
  }
  results_.RecordProgress(sender.info.rank(), p);
  rpc_.Reply(request, Message());
}

void Scheduler::HandleEvalReport(const Member& sender, Incoming&& request) {
  Status s = sender.info.role() == wire::WORKER
                 ? results_.CheckEvalReport(request.msg)
                 : Status::InvalidArgument("only workers report evaluations");
  if (!s.ok()) {
    rpc_.ReplyError(request, s);
    return;
  }
  rpc_.Reply(request, Message());
  if (request.msg.meta.eval_report().has_counter_value()) {
    counter_value_ = request.msg.meta.eval_report().counter_value();
  }
  results_.RecordEval(sender.info.rank(), std::move(request.msg));
}

void Scheduler::HandleClock(const Member& sender, Incoming&& request) {
  if (sender.info.role() != wire::WORKER) {
    rpc_.ReplyError(request, Status::InvalidArgument("only workers report clocks"));
    return;
  }
  const wire::Clock& c = request.msg.meta.clock();
  clocks_.Report(sender.info.rank(), c);
  checkpointer_.OnClock(sender.info.rank(), c);
  const int64_t min = clocks_.MinClock();
  auto answer = [this, min](const Incoming& w) {
    Message reply;
    reply.meta.mutable_clock()->set_min_clock(min);
    reply.meta.set_checkpoint_request(checkpointer_.requested());
    rpc_.Reply(w, std::move(reply));
  };
  // A worker must not block on its clock while a checkpoint waits for it.
  if (clocks_.Ready(c.wait_for()) || checkpointer_.NeedsWorker(sender.info.rank())) {
    answer(request);
  } else {
    const int64_t wait_for = c.wait_for();
    clocks_.Defer(std::move(request), wait_for);
  }
  // A clock moved: release the waits it satisfies.
  for (const Incoming& w : clocks_.TakeReady()) answer(w);
}

void Scheduler::HandleCheckpointReady(const Member& sender, Incoming&& request) {
  if (sender.info.role() != wire::WORKER || !request.msg.meta.has_checkpoint()) {
    rpc_.ReplyError(request, Status::InvalidArgument("only workers report checkpoint states"));
    return;
  }
  checkpointer_.OnReady(sender.info.rank(), std::move(request));
}

void Scheduler::HandleCheckpointFiles(const Member& sender, Incoming&& request) {
  if (sender.info.role() != wire::SERVER || !request.msg.meta.has_checkpoint()) {
    rpc_.ReplyError(request, Status::InvalidArgument("only servers report checkpoint files"));
    return;
  }
  checkpointer_.OnFiles(sender.info.rank(), std::move(request));
}

void Scheduler::Abort(const std::string& why) {
  if (state_ != wire::JOB_RUNNING) return;
  LOG(ERROR) << "aborting the job: " << why;
  state_ = wire::JOB_ABORTED;
  abort_reason_ = why;
  Status error = Status::Aborted(why);
  checkpointer_.Abandon(error);
  for (const Incoming& p : membership_.TakePending()) rpc_.ReplyError(p, error);
  for (auto& [name, b] : barriers_) {
    for (const Incoming& w : b.waiting) {
      rpc_.ReplyError(w, error);
    }
  }
  barriers_.clear();
  for (const Incoming& w : clocks_.TakeAll()) rpc_.ReplyError(w, error);
}

void Scheduler::CheckHeartbeats() {
  const int timeout_ms = options_.config.cluster().heartbeat_timeout_ms();
  const Member* silent =
      membership_.FindSilent(SteadyClock::now(), std::chrono::milliseconds(timeout_ms));
  if (silent == nullptr) return;
  if (replicated() && silent->info.role() == wire::SERVER && state_ == wire::JOB_RUNNING &&
      Failover(*silent)) {
    return;
  }
  Abort(NodeLabel(silent->info) + " sent nothing for " + std::to_string(timeout_ms) + " ms");
}

void Scheduler::NewMapEpoch() {
  const uint64_t epoch = NewClusterEpoch();
  rpc_.set_epoch(epoch);
  epochs_.insert(epoch);
}

void Scheduler::HandleRejoin(Incoming&& request) {
  const wire::NodeInfo& node = request.msg.meta.register_request().node();
  const int rank = node.rank();
  Member* m = node.role() == wire::SERVER && rank >= 0 && rank < options_.num_servers
                  ? membership_.Find(server_ids_[static_cast<size_t>(rank)])
                  : nullptr;
  if (m != nullptr && !m->dead && node.pid() != m->info.pid()) {
    // A new process for a server still thought alive: the old one is gone
    // (the launcher restarted it faster than its heartbeats went silent).
    LOG(WARNING) << NodeLabel(m->info) << " registers again as pid " << node.pid()
                 << ": the old process is gone";
    if (!Failover(*m)) {
      Abort(NodeLabel(m->info) + " died and a partition has no live copy");
      rpc_.ReplyError(request, Status::Aborted("the job was aborted"));
      return;
    }
  }
  if (m == nullptr || !m->dead) {
    rpc_.ReplyError(request, Status::InvalidArgument(
                                 "registration is closed (only a dead server of a replicated "
                                 "job may register again, with its rank)"));
    return;
  }
  const int node_id = m->info.node_id();
  std::vector<int> copy;
  for (int p = 0; p < partition_map_.partitions_size(); ++p) {
    const wire::PartitionMap::Placement& place = partition_map_.partitions(p);
    if (place.backup() < 0 && place.primary() != node_id) copy.push_back(p);
  }
  for (int p : copy) partition_map_.mutable_partitions(p)->set_pending_backup(node_id);
  membership_.Revive(node_id, node, SteadyClock::now());
  LOG(INFO) << NodeLabel(m->info) << " rejoins; it copies " << copy.size()
            << " partitions from their primaries";
  Message reply;
  wire::RegisterReply* r = reply.meta.mutable_register_reply();
  *r->mutable_you() = m->info;
  for (const auto& [id, member] : membership_.members()) *r->add_nodes() = member.info;
  r->set_cluster_epoch(rpc_.epoch());
  r->set_config(options_.config.SerializeAsString());
  for (int p : copy) r->add_copy_partitions(p);
  *reply.meta.mutable_partition_map() = partition_map_;
  rpc_.Reply(request, std::move(reply));
}

void Scheduler::HandleRejoined(const Member& sender, Incoming&& request) {
  const int p = request.msg.meta.partition();
  const int node = sender.info.node_id();
  if (sender.info.role() != wire::SERVER || p < 0 || p >= partition_map_.partitions_size() ||
      partition_map_.partitions(p).primary() == node) {
    rpc_.ReplyError(request, Status::InvalidArgument("REJOINED of partition " + std::to_string(p)));
    return;
  }
  rpc_.Reply(request, Message());
  if (partition_map_.partitions(p).backup() == node) return;  // a copy of the report
  partition_map_.mutable_partitions(p)->set_backup(node);
  partition_map_.mutable_partitions(p)->set_pending_backup(-1);
  NewMapEpoch();
  Json event;
  event["server"] = "server-" + std::to_string(sender.info.rank());
  event["partition"] = p;
  event["train_seconds"] = TrainSeconds();
  event["epoch"] = rpc_.epoch();
  rejoins_.push_back(event);
  results_.AppendEvent("rejoined", event);
  LOG(INFO) << NodeLabel(sender.info) << " is the backup of partition " << p
            << " again (cluster epoch " << rpc_.epoch() << ")";
}

bool Scheduler::Failover(const Member& dead) {
  const int node = dead.info.node_id();
  wire::PartitionMap next = partition_map_;
  Json promoted = Json::array();
  for (int p = 0; p < next.partitions_size(); ++p) {
    wire::PartitionMap::Placement* place = next.mutable_partitions(p);
    if (place->primary() == node) {
      if (place->backup() < 0) {
        LOG(ERROR) << "partition " << p << " has no live copy left";
        return false;
      }
      place->set_primary(place->backup());
      place->set_backup(-1);
      promoted.push_back(p);
    } else if (place->backup() == node) {
      place->set_backup(-1);
    }
    if (place->pending_backup() == node) place->set_pending_backup(-1);
  }
  const double silent_s = SecondsSince(dead.last_seen);
  partition_map_ = std::move(next);
  NewMapEpoch();
  const uint64_t epoch = rpc_.epoch();
  membership_.MarkDead(node);
  std::vector<int> live;
  for (int id : server_ids_) {
    const Member* m = membership_.Find(id);
    if (m != nullptr && !m->dead) live.push_back(id);
  }
  checkpointer_.OnFailover(live);
  Json event;
  event["server"] = "server-" + std::to_string(dead.info.rank());
  event["node"] = node;
  event["silent_for_s"] = silent_s;
  event["train_seconds"] = TrainSeconds();
  event["promoted_partitions"] = promoted;
  event["epoch"] = epoch;
  failovers_.push_back(event);
  results_.AppendEvent("failover", event);
  LOG(WARNING) << NodeLabel(dead.info) << " sent nothing for " << silent_s
               << " s: its partitions fail over to their backups in cluster epoch " << epoch;
  return true;
}

void Scheduler::MaybeWriteProgress(bool force) {
  // After the "trained" barrier (which writes the final line) nothing moves.
  if (!force && phase_ >= JobPhase::kEvaluating) return;
  if (std::optional<ProgressLine> line = results_.MaybeAppendProgress(force, WorkersDone())) {
    metrics_.OnProgress(*line);
    metrics_.AppendLine(*line, results_.files());
  }
}

int Scheduler::WorkersDone() const {
  if (phase_ >= JobPhase::kEvaluating) return options_.num_workers;
  auto trained = barriers_.find(JobBarrierName(JobBarrier::kTrained));
  return trained == barriers_.end() ? 0 : static_cast<int>(trained->second.waiting.size());
}

Status Scheduler::WriteClusterJson() const {
  // The scheduler first, then every member by node id.
  std::vector<wire::NodeInfo> nodes(1);
  nodes[0].set_role(wire::SCHEDULER);
  nodes[0].set_rank(0);
  nodes[0].set_node_id(kSchedulerNodeId);
  nodes[0].set_host(advertised_host());
  nodes[0].set_port(port_);
  nodes[0].set_pid(getpid());
  for (const auto& [id, m] : membership_.members()) nodes.push_back(m.info);
  return results_.WriteCluster(membership_.epoch(), nodes, metrics_url_);
}

}  // namespace mtps
