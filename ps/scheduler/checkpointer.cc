// The scheduler's checkpoint coordination (see ps/scheduler/checkpointer.h).
#include "ps/scheduler/checkpointer.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <glog/logging.h>

#include "common/base/durable_file.h"

namespace mtps {
namespace {

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double UnixTime() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

Checkpointer::Checkpointer(Rpc* rpc, CheckpointerOptions options)
    : rpc_(rpc), options_(std::move(options)), store_(options_.root) {}

Status Checkpointer::Init() {
  if (!enabled()) return Status::OK();
  MTPS_RETURN_IF_ERROR(store_.Init());
  const std::vector<uint64_t> ids = store_.ListIds();
  if (!ids.empty()) next_id_ = ids.front() + 1;
  return Status::OK();
}

void Checkpointer::ResumeFrom(const checkpoint::Manifest& manifest) {
  const std::vector<uint64_t> ids = store_.ListIds();
  next_id_ = std::max<uint64_t>(manifest.id(), ids.empty() ? 0 : ids.front()) + 1;
  last_step_ = manifest.step();
  // The restored servers' tables are the base of the next delta.
  Chain chain;
  chain.id = manifest.id();
  chain.dir = store_.DirFor(manifest.id());
  for (const wire::CheckpointFile& f : manifest.files()) {
    int rank = -1;
    if (std::sscanf(f.name().c_str(), "server-%d.", &rank) != 1) continue;
    chain.server_files[rank].push_back(f);
    if (rank == 0 && f.name().rfind("server-0.shard-0.delta-", 0) == 0) ++chain.deltas;
  }
  chain.start = manifest.has_chain_start() ? manifest.chain_start() : manifest.id();
  chain_ = std::move(chain);
}

bool Checkpointer::Request(const std::string& reason, Callback on_cut, bool after_commit) {
  if (!enabled()) return false;
  PendingRequest* target;
  if (cut_) {
    // The cut in progress no longer sees what changes from now on: the
    // request waits for the next cut.
    if (!pending_) pending_ = PendingRequest{reason, {}, {}};
    target = &*pending_;
  } else {
    PendingRequest request{reason, {}, {}};
    if (on_cut)
      (after_commit ? request.on_commit : request.on_release).push_back(std::move(on_cut));
    Begin(std::move(request));
    return true;
  }
  if (on_cut) (after_commit ? target->on_commit : target->on_release).push_back(std::move(on_cut));
  return true;
}

void Checkpointer::Begin(PendingRequest request) {
  Cut cut;
  cut.id = next_id_++;
  cut.reason = request.reason;
  cut.dir = store_.DirFor(cut.id);
  cut.requested = SteadyClock::now();
  cut.deadline = Deadline::In(options_.config.cluster().barrier_timeout_ms());
  // A job being stopped does not wait long for its workers to pause.
  cut.collect_deadline = request.reason == "signal" ? Deadline::In(kStopCollectMs) : cut.deadline;
  cut.states = final_states_;
  cut.delta = chain_.has_value() && chain_->deltas + 1 < options_.config.checkpoint().full_every();
  cut.on_release = std::move(request.on_release);
  cut.on_commit = std::move(request.on_commit);
  std::error_code ec;
  std::filesystem::create_directories(cut.dir, ec);
  if (ec) {
    LOG(ERROR) << "checkpoint " << cut.id << " (" << cut.reason << ") not taken: cannot create "
               << cut.dir << ": " << ec.message();
    const Status error = Status::IoError("cannot create " + cut.dir + ": " + ec.message());
    for (auto& f : cut.on_release) f(error);
    for (auto& f : cut.on_commit) f(error);
    return;
  }
  LOG(INFO) << "checkpoint " << cut.id << " (" << cut.reason << ") requested";
  cut_ = std::move(cut);
  if (on_begin_) on_begin_();
  MaybeSnapshot();  // every worker may have finished already
}

void Checkpointer::StartPending() {
  if (cut_ || !pending_) return;
  PendingRequest request = std::move(*pending_);
  pending_.reset();
  Begin(std::move(request));
}

void Checkpointer::Poll(bool training) {
  if (!enabled()) return;
  const auto now = SteadyClock::now();
  if (cut_) {
    if (cut_->deadline.Expired()) {
      Fail("not complete within cluster.barrier_timeout_ms (" +
           std::to_string(options_.config.cluster().barrier_timeout_ms()) + " ms)");
    } else if (!cut_->snapshot_sent && cut_->collect_deadline.Expired()) {
      Fail("the workers did not all pause within " + std::to_string(kStopCollectMs) + " ms");
    }
    return;
  }
  if (!training) return;
  if (!timer_started_) {
    timer_started_ = true;
    last_checkpoint_ = now;
  }
  const config::CheckpointConfig& c = options_.config.checkpoint();
  if (c.interval_seconds() > 0 && Seconds(now - last_checkpoint_) >= c.interval_seconds()) {
    Request("interval");
    return;
  }
  if (c.interval_steps() > 0 && TotalSteps() - last_step_ >= c.interval_steps()) {
    Request("steps");
    return;
  }
  if (c.at_epoch_end() && static_cast<int>(epochs_.size()) == options_.num_workers) {
    int done = options_.config.train().epochs();
    for (const auto& [rank, e] : epochs_) done = std::min(done, e);
    // The last epoch's checkpoint is the "trained" one (the scheduler's).
    if (done > last_epoch_ && done < options_.config.train().epochs()) {
      last_epoch_ = done;
      Request("epoch");
    }
  }
}

void Checkpointer::OnClock(int rank, const wire::Clock& clock) {
  clocks_[rank] = std::max(clocks_[rank], clock.clock());
  if (clock.has_epoch()) epochs_[rank] = std::max(epochs_[rank], clock.epoch());
  if (clock.finished() && clock.has_worker_state()) {
    final_states_[rank] = clock.worker_state();
    if (cut_ && !cut_->snapshot_sent && cut_->held.count(rank) == 0) {
      cut_->states[rank] = clock.worker_state();
      MaybeSnapshot();
    }
  }
}

void Checkpointer::OnReady(int rank, Incoming&& request) {
  const wire::Checkpoint& c = request.msg.meta.checkpoint();
  if (!cut_ || c.id() != cut_->id || cut_->snapshot_sent) {
    // A late or stray report: the worker just goes on.
    rpc_->Reply(request, Message());
    return;
  }
  if (cut_->held.empty()) cut_->first_ready = SteadyClock::now();
  cut_->states[rank] = c.worker_state();
  cut_->held[rank] = std::move(request);
  MaybeSnapshot();
}

void Checkpointer::MaybeSnapshot() {
  if (!cut_ || cut_->snapshot_sent) return;
  if (static_cast<int>(cut_->states.size()) < options_.num_workers) return;
  Cut& cut = *cut_;
  cut.snapshot_sent = true;
  if (cut.held.empty()) cut.first_ready = SteadyClock::now();
  cut.step = TotalSteps();
  for (const auto& [rank, state] : cut.states) {
    wire::CheckpointFile f;
    f.set_name("worker-" + std::to_string(rank) + ".state");
    uint64_t size = 0;
    uint32_t crc = 0;
    Status s = WriteFileDurably(cut.dir + "/" + f.name(), state, &size, &crc);
    if (!s.ok()) return Fail(s.message());
    f.set_size(size);
    f.set_crc32(crc);
    cut.worker_files.push_back(f);
  }
  for (int r = 0; r < static_cast<int>(server_ids_.size()); ++r) {
    Message msg(wire::SNAPSHOT);
    msg.meta.mutable_checkpoint()->set_id(cut.id);
    msg.meta.mutable_checkpoint()->set_dir(cut.dir);
    if (cut.delta) {
      msg.meta.mutable_checkpoint()->set_delta(true);
      msg.meta.mutable_checkpoint()->set_base_dir(chain_->dir);
      // Every partition's chain: each server links the files of the
      // partitions it checkpoints.
      for (const auto& [partition, files] : chain_->server_files) {
        for (const wire::CheckpointFile& f : files) {
          *msg.meta.mutable_checkpoint()->add_base_files() = f;
        }
      }
    }
    const uint64_t id = cut.id;
    Status s = rpc_->StartAsync(server_ids_[r], std::move(msg),
                                options_.config.cluster().request_timeout_ms(),
                                [this, r, id](StatusOr<Message>&& reply) {
                                  if (cut_ && cut_->id == id) OnSnapshotReply(r, reply);
                                });
    if (!s.ok())
      return Fail("cannot send SNAPSHOT to server " + std::to_string(r) + ": " + s.message());
  }
}

void Checkpointer::OnSnapshotReply(int rank, const StatusOr<Message>& reply) {
  if (!reply.ok()) {
    return Fail("server " + std::to_string(rank) +
                " could not snapshot: " + reply.status().message());
  }
  if (++cut_->servers_copied == static_cast<int>(server_ids_.size())) Release(Status::OK());
  MaybeCommit();
}

void Checkpointer::Release(const Status& outcome) {
  Cut& cut = *cut_;
  if (cut.released_workers) return;
  cut.released_workers = true;
  cut.released = SteadyClock::now();
  for (auto& [rank, request] : cut.held) {
    // Paused workers go on whatever happened to the checkpoint.
    rpc_->Reply(request, Message());
  }
  cut.held.clear();
  std::vector<Callback> callbacks = std::move(cut.on_release);
  cut.on_release.clear();
  for (auto& f : callbacks) f(outcome);
}

void Checkpointer::OnFiles(int rank, Incoming&& request) {
  const wire::Checkpoint& c = request.msg.meta.checkpoint();
  rpc_->Reply(request, Message());
  if (!cut_ || c.id() != cut_->id) return;
  if (!c.error().empty()) {
    return Fail("server " + std::to_string(rank) + " could not write its files: " + c.error());
  }
  cut_->server_files[c.partition() >= 0 ? c.partition() : rank].assign(c.files().begin(),
                                                                       c.files().end());
  cut_->max_copy_seconds = std::max(cut_->max_copy_seconds, c.copy_seconds());
  cut_->max_write_seconds = std::max(cut_->max_write_seconds, c.write_seconds());
  MaybeCommit();
}

void Checkpointer::MaybeCommit() {
  if (!cut_ || !cut_->released_workers) return;
  if (static_cast<int>(cut_->server_files.size()) < options_.num_servers) return;
  Cut& cut = *cut_;
  checkpoint::Manifest m;
  m.set_id(cut.id);
  m.set_step(cut.step);
  m.set_num_servers(options_.num_servers);
  m.set_num_workers(options_.num_workers);
  m.set_shard_threads(options_.config.server().shard_threads());
  m.set_config(options_.config.SerializeAsString());
  m.set_unix_time(UnixTime());
  m.set_reason(cut.reason);
  m.set_chain_start(cut.delta ? chain_->start : cut.id);
  uint64_t bytes = 0;
  for (const auto& [rank, files] : cut.server_files) {
    for (const wire::CheckpointFile& f : files) {
      *m.add_files() = f;
      bytes += f.size();
    }
  }
  for (const wire::CheckpointFile& f : cut.worker_files) {
    *m.add_files() = f;
    bytes += f.size();
  }
  bool trained = true;
  for (const auto& [rank, state] : cut.states) {
    checkpoint::WorkerState w;
    trained = trained && w.ParseFromString(state) && w.finished();
  }
  m.mutable_scheduler()->set_trained(trained);
  if (train_seconds_) m.mutable_scheduler()->set_train_seconds(train_seconds_());
  Status s = store_.Commit(m);
  if (!s.ok()) return Fail("cannot write the manifest: " + s.message());
  const auto now = SteadyClock::now();
  const double pause = Seconds(cut.released - cut.first_ready);
  const double collect = Seconds(cut.first_ready - cut.requested);
  const double total = Seconds(now - cut.requested);
  LOG(INFO) << "checkpoint " << cut.id << " (" << cut.reason << (cut.delta ? ", incremental" : "")
            << ") committed in " << cut.dir << ": step " << cut.step << ", " << bytes
            << " bytes, training paused " << pause << " s (server copy " << cut.max_copy_seconds
            << " s), files written in " << cut.max_write_seconds << " s, " << total
            << " s from request to commit";
  Json r;
  r["id"] = cut.id;
  r["reason"] = cut.reason;
  r["delta"] = cut.delta;
  r["step"] = cut.step;
  r["bytes"] = bytes;
  r["collect_s"] = collect;
  r["pause_s"] = pause;
  r["copy_s"] = cut.max_copy_seconds;
  r["write_s"] = cut.max_write_seconds;
  r["total_s"] = total;
  records_.push_back(r);
  ++committed_;
  max_pause_ = std::max(max_pause_, pause);
  if (pause_metric_ != nullptr) pause_metric_->Observe(pause);
  if (write_metric_ != nullptr) write_metric_->Observe(cut.max_write_seconds);
  last_step_ = cut.step;
  last_checkpoint_ = now;
  Chain chain;
  chain.id = cut.id;
  chain.dir = cut.dir;
  chain.server_files = cut.server_files;
  chain.deltas = cut.delta ? chain_->deltas + 1 : 0;
  chain.start = m.chain_start();
  chain_ = std::move(chain);
  const uint64_t id = cut.id;
  std::vector<Callback> callbacks = std::move(cut.on_commit);
  cut_.reset();
  s = store_.Prune(id, options_.config.checkpoint().keep());
  if (!s.ok()) LOG(WARNING) << "cannot delete old checkpoints: " << s;
  for (auto& f : callbacks) f(Status::OK());
  StartPending();
}

void Checkpointer::Fail(const std::string& why) {
  if (!cut_) return;
  LOG(WARNING) << "checkpoint " << cut_->id << " (" << cut_->reason << ") abandoned: " << why;
  // The shards began a new delta period at the cut: the chain is broken.
  if (cut_->snapshot_sent) chain_.reset();
  const Status error =
      Status::Aborted("checkpoint " + std::to_string(cut_->id) + " abandoned: " + why);
  Release(error);
  const uint64_t id = cut_->id;
  std::vector<Callback> callbacks = std::move(cut_->on_commit);
  last_checkpoint_ = SteadyClock::now();
  cut_.reset();
  Status s = store_.Remove(id);
  if (!s.ok()) LOG(WARNING) << s;
  for (auto& f : callbacks) f(error);
  StartPending();
}

void Checkpointer::OnFailover(std::vector<int> live_server_ids) {
  server_ids_ = std::move(live_server_ids);
  if (cut_) Fail("a server died");
  chain_.reset();  // a promoted backup has no delta period of its own
}

void Checkpointer::Abandon(const Status& error) {
  if (pending_) {
    for (auto& f : pending_->on_release) f(error);
    for (auto& f : pending_->on_commit) f(error);
    pending_.reset();
  }
  if (!cut_) return;
  for (auto& [rank, request] : cut_->held) rpc_->ReplyError(request, error);
  cut_->held.clear();
  Fail(error.message());
}

int64_t Checkpointer::TotalSteps() const {
  int64_t total = 0;
  for (const auto& [rank, c] : clocks_) total += c;
  return total;
}

Json Checkpointer::SummaryJson() const {
  Json j;
  j["committed"] = committed_;
  j["max_pause_s"] = max_pause_;
  j["records"] = records_;
  return j;
}

}  // namespace mtps
