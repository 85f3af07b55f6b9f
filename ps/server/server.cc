// The parameter server's request handling (see ps/server/server.h).
#include "ps/server/server.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "common/base/durable_file.h"
#include "common/base/finite.h"
#include "common/cluster/partition.h"
#include "common/config/config_check.h"
#include "common/metrics/process_stats.h"
#include "ps/server/server_config.h"

namespace mtps {
namespace {

// Largest pull answer, in bytes: a peer must not make the server allocate
// unbounded memory with one small request (KvClient splits larger pulls).
constexpr size_t kMaxPullBytes = size_t{256} << 20;
// Largest sparse push (keys and gradients); the transport refuses larger
// messages before reading them (common/net/zmq_transport.cc).
constexpr size_t kMaxPushBytes = size_t{512} << 20;

// The shard task of a data-plane op (pulls, pushes, INIT_DENSE); false for
// any other op.
bool DataTaskKind(wire::Op op, ShardTask::Kind* kind) {
  switch (op) {
    case wire::PULL_SPARSE:
      *kind = ShardTask::Kind::kPullSparse;
      return true;
    case wire::PUSH_SPARSE:
      *kind = ShardTask::Kind::kPushSparse;
      return true;
    case wire::PULL_DENSE:
      *kind = ShardTask::Kind::kPullDense;
      return true;
    case wire::PUSH_DENSE:
      *kind = ShardTask::Kind::kPushDense;
      return true;
    case wire::INIT_DENSE:
      *kind = ShardTask::Kind::kInitDense;
      return true;
    default:
      return false;
  }
}

}  // namespace

StatusOr<std::unique_ptr<ParameterServer>> ParameterServer::Create(ClusterMember* member) {
  const config::ServerConfig& server = member->config().server();
  ConfigProblems problems;
  CheckServerConfig(member->config(), &problems);
  MTPS_RETURN_IF_ERROR(problems.ToStatus());
  MTPS_RETURN_IF_ERROR(ValidateSparseTableOptions(ShardTableOptions(member->config())));
  MTPS_RETURN_IF_ERROR(ValidateDenseOptimizer(server.dense_optimizer()));
  std::unique_ptr<ParameterServer> ps(new ParameterServer(member));
  if (member->resuming()) MTPS_RETURN_IF_ERROR(ps->RestoreCheckpoint());
  if (member->rejoining()) MTPS_RETURN_IF_ERROR(ps->Rejoin());
  return ps;
}

Status ParameterServer::LoadIntoShards(Partition& part, const std::shared_ptr<ShardTask>& task,
                                       const std::string& what) {
  SubmitToShards(part.shards, task);
  // Serve (heartbeats, and requests, which queue behind the load on every
  // shard) while the shards load: a big table takes longer than the
  // heartbeat timeout.
  const Deadline limit = Deadline::In(int64_t{30} * 60 * 1000);
  while (task->remaining.load(std::memory_order_acquire) != 0) {
    if (limit.Expired()) {
      return Status::DeadlineExceeded(what + ": the shards did not finish within 30 minutes");
    }
    MTPS_RETURN_IF_ERROR(member_->Tick(Deadline::In(20)));
  }
  for (const Status& s : task->shard_status) MTPS_RETURN_IF_ERROR(s);
  return Status::OK();
}

Status ParameterServer::RestoreCheckpoint() {
  for (auto& part : partitions_) MTPS_RETURN_IF_ERROR(RestorePartition(*part));
  return Status::OK();
}

Status ParameterServer::RestorePartition(Partition& part) {
  const wire::Restore& r = member_->restore();
  const std::string prefix = "server-" + std::to_string(part.id);
  auto read = [&](const std::string& name, std::string* out) -> Status {
    for (const wire::CheckpointFile& f : r.files()) {
      if (f.name() != name) continue;
      MTPS_ASSIGN_OR_RETURN(*out, ReadVerifiedFile(r.dir() + "/" + name, f.size(), f.crc32()));
      return Status::OK();
    }
    return Status::Corruption("checkpoint " + std::to_string(r.checkpoint_id()) + " in " + r.dir() +
                              " lists no file " + name);
  };
  const auto start = SteadyClock::now();
  auto task = std::make_shared<ShardTask>();
  task->kind = ShardTask::Kind::kRestore;
  task->partition = part.id;
  task->deadline = Deadline::In(int64_t{24} * 3600 * 1000);
  const size_t n = part.shards.size();
  task->restore_sparse.resize(n);
  task->restore_names.resize(n);
  task->shard_status.resize(n);
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    task->restore_names[i] = r.dir() + "/" + prefix + ".shard-" + std::to_string(i);
    MTPS_RETURN_IF_ERROR(read(prefix + ".shard-" + std::to_string(i), &task->restore_sparse[i]));
    bytes += task->restore_sparse[i].size();
  }
  // Incremental checkpoints: each shard's deltas, in id order (their names
  // sort by id).
  task->restore_deltas.resize(n);
  task->restore_delta_names.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string delta_prefix = prefix + ".shard-" + std::to_string(i) + ".delta-";
    std::vector<std::string> names;
    for (const wire::CheckpointFile& f : r.files()) {
      if (f.name().compare(0, delta_prefix.size(), delta_prefix) == 0) names.push_back(f.name());
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      task->restore_deltas[i].emplace_back();
      MTPS_RETURN_IF_ERROR(read(name, &task->restore_deltas[i].back()));
      task->restore_delta_names[i].push_back(r.dir() + "/" + name);
      bytes += task->restore_deltas[i].back().size();
    }
  }
  task->dense_name = r.dir() + "/" + prefix + ".dense";
  MTPS_RETURN_IF_ERROR(read(prefix + ".dense", &task->dense_bytes));
  // The applied-push window (absent from checkpoints older than it).
  for (const wire::CheckpointFile& f : r.files()) {
    if (f.name() != prefix + ".window") continue;
    task->window_name = r.dir() + "/" + f.name();
    MTPS_RETURN_IF_ERROR(read(f.name(), &task->window_bytes));
  }
  MTPS_RETURN_IF_ERROR(
      LoadIntoShards(part, task, "restoring checkpoint " + std::to_string(r.checkpoint_id())));
  LOG(INFO) << "server " << member_->self().rank() << " restored partition " << part.id << ": " << n
            << " shards (" << bytes << " bytes) from checkpoint " << r.checkpoint_id() << " in "
            << r.dir() << " in "
            << std::chrono::duration<double>(SteadyClock::now() - start).count() << " s";
  return Status::OK();
}

void ParameterServer::FinishSnapshot(ShardTask& task) {
  const wire::Checkpoint& c = task.request.msg.meta.checkpoint();
  CheckpointWriteJob job;
  job.id = c.id();
  job.dir = c.dir();
  job.server_rank = task.partition;
  job.shards = std::move(task.snapshots);
  job.delta = c.delta();
  job.base_dir = c.base_dir();
  // The chain's files of this partition (the scheduler lists every one's).
  const std::string prefix = "server-" + std::to_string(task.partition) + ".";
  for (const wire::CheckpointFile& f : c.base_files()) {
    if (f.name().compare(0, prefix.size(), prefix) == 0) job.base_files.push_back(f);
  }
  job.dense = std::move(task.dense_bytes);
  job.window = std::move(task.window_bytes);
  job.copy_seconds = std::chrono::duration<double>(SteadyClock::now() - task.submitted).count();
  LOG(INFO) << "checkpoint " << job.id << ": shards copied in " << job.copy_seconds
            << " s; writing to " << job.dir;
  // The scheduler hears once every primary partition was copied.
  if (--snapshot_parts_ == 0) {
    member_->rpc().Reply(task.request, Message());
    snapshot_answered_ = std::max(snapshot_answered_, job.id);
  }
  writer_->Submit(std::move(job));
}

void ParameterServer::SendWriteResults() {
  std::vector<CheckpointWriteResult> results;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    results.swap(write_results_);
  }
  for (CheckpointWriteResult& r : results) {
    Message msg(wire::CHECKPOINT_FILES);
    wire::Checkpoint* c = msg.meta.mutable_checkpoint();
    c->set_id(r.id);
    c->set_partition(r.partition);
    for (auto& f : r.files) *c->add_files() = std::move(f);
    c->set_error(r.error);
    c->set_copy_seconds(r.copy_seconds);
    c->set_write_seconds(r.write_seconds);
    if (r.error.empty()) {
      LOG(INFO) << "checkpoint " << r.id << ": " << c->files_size() << " files written in "
                << r.write_seconds << " s";
    } else {
      LOG(ERROR) << "checkpoint " << r.id << ": " << r.error;
    }
    ++reports_in_flight_;
    Status s = member_->rpc().StartAsync(
        kSchedulerNodeId, std::move(msg), member_->config().cluster().request_timeout_ms(),
        [this](StatusOr<Message>&& reply) {
          --reports_in_flight_;
          if (!reply.ok()) {
            LOG(WARNING) << "checkpoint report failed: " << reply.status();
          }
        });
    if (!s.ok()) {
      --reports_in_flight_;
      LOG(WARNING) << "cannot report checkpoint files: " << s;
    }
  }
}

ParameterServer::ParameterServer(ClusterMember* member)
    : member_(member), dim_(member->config().model().embedding_dim()) {
  const config::Config& config = member->config();
  const int n = config.server().shard_threads();
  const SparseTableOptions table = ShardTableOptions(config);
  const int rank = member->self().rank();
  const int servers = member->num_servers();
  const bool replicated = config.server().replicas() > 0 && servers > 1;
  // Partition `rank` (primary; its backup is the next server), and with
  // replicas the backup of the previous server's.
  std::vector<std::pair<int, bool>> held = {{rank, true}};
  if (replicated) held.emplace_back((rank + servers - 1) % servers, false);
  if (member->rejoining()) {
    // Back after dying: a backup of what lacks one, copied before it counts.
    held.clear();
    for (int p : member->copy_partitions()) held.emplace_back(p, false);
  }
  for (const auto& [id, primary] : held) {
    auto part = std::make_unique<Partition>();
    part->id = id;
    part->primary = primary;
    if (primary && replicated) {
      part->backup_node = member->server_ids().at(static_cast<size_t>((rank + 1) % servers));
    }
    part->window = std::make_unique<PushWindow>();
    part->loading = member->rejoining();
    for (int i = 0; i < n; ++i) {
      part->shards.push_back(std::make_unique<ServerShard>(
          i, n, table, config.server().dense_optimizer(), DenseStore::ModeOf(config),
          [this](std::shared_ptr<ShardTask> task) { OnDone(std::move(task)); }, part->window.get(),
          &test_hooks_.shard_serve));
    }
    partitions_.push_back(std::move(part));
  }
  writer_ = std::make_unique<CheckpointWriter>(
      [this](CheckpointWriteResult result) {
        {
          std::lock_guard<std::mutex> lock(done_mu_);
          write_results_.push_back(std::move(result));
        }
        member_->rpc().transport()->Wake();
      },
      member_->config().checkpoint().test_write_delay_ms());
  Rpc& rpc = member_->rpc();
  rpc.set_wake_handler([this] {
    SendFinished();
    SendWriteResults();
  });
  rpc.set_request_handler([this](Incoming&& request) { Handle(std::move(request)); });
  member_->set_on_partition_map([this] { OnPartitionMap(); });

  pull_keys_metric_ = metrics_.GetCounter("mtps_server_pull_keys_total",
                                          "Sparse keys this server answered pulls for.");
  push_keys_metric_ = metrics_.GetCounter("mtps_server_push_keys_total",
                                          "Sparse keys of the pushes this server applied.");
  rows_metric_ = metrics_.GetGauge(
      "mtps_server_rows", "Sparse rows this server holds (every partition it holds, backups too).");
  memory_metric_ = metrics_.GetGauge("mtps_process_resident_memory_bytes",
                                     "Resident memory of the process (/proc/self/statm).");
  // The data plane's series exist from the start (at 0), errors included.
  for (wire::Op op : {wire::PULL_SPARSE, wire::PUSH_SPARSE, wire::PULL_DENSE, wire::PUSH_DENSE,
                      wire::INIT_DENSE}) {
    RequestMetric(op, /*error=*/false);
    RequestMetric(op, /*error=*/true);
  }
  UpdateMetrics();
  member_->set_heartbeat_metrics([this](wire::MetricsSnapshot* snapshot) {
    UpdateMetrics();
    *snapshot = metrics_.Snapshot();
  });
}

Counter* ParameterServer::RequestMetric(wire::Op op, bool error) {
  const size_t i = op >= 0 && op < kOps ? static_cast<size_t>(op) : 0;
  Counter*& c = (error ? errors_metric_ : requests_metric_)[i];
  if (c == nullptr) {
    const std::string name = i == 0 ? "OP_UNSPECIFIED" : wire::Op_Name(op);
    c = error ? metrics_.GetCounter("mtps_server_request_errors_total",
                                    "Requests this server answered with an error, by op.",
                                    {{"op", name}})
              : metrics_.GetCounter("mtps_server_requests_total",
                                    "Requests this server received, by op.", {{"op", name}});
  }
  return c;
}

void ParameterServer::UpdateMetrics() {
  int64_t rows = 0;
  for (const auto& part : partitions_) {
    for (const auto& shard : part->shards) rows += shard->rows();
  }
  rows_metric_->Set(static_cast<double>(rows));
  if (auto rss = ResidentMemoryBytes(); rss.ok()) memory_metric_->Set(static_cast<double>(*rss));
}

ParameterServer::Partition* ParameterServer::FindPartition(int id) {
  for (auto& part : partitions_) {
    if (part->id == id) return part.get();
  }
  return nullptr;
}

ParameterServer::~ParameterServer() {
  member_->set_on_partition_map(nullptr);
  member_->set_heartbeat_metrics(nullptr);
  member_->rpc().set_request_handler(nullptr);
  member_->rpc().set_wake_handler(nullptr);
  StopShards();
}

Status ParameterServer::Run() {
  Status status;
  for (;;) {
    status = member_->Tick(Deadline::In(100));
    if (!status.ok() || member_->finished()) break;
  }
  if (status.ok()) {
    // Files of a checkpoint still being written are finished and reported.
    Deadline limit = Deadline::In(member_->config().cluster().barrier_timeout_ms());
    while ((writer_->pending() > 0 || reports_in_flight_ > 0) && !limit.Expired()) {
      member_->rpc().Poll(Deadline::In(50));
      SendWriteResults();
    }
  }
  StopShards();
  SendFinished();
  CollectTableStats();
  if (!status.ok()) return status;
  // The figures are of this server's own partition (a backup's are alike).
  const auto& shards = partitions_[0]->shards;
  MemoryReport memory;
  for (const auto& shard : shards) {
    const MemoryReport m = shard->table().memory_report();
    memory.index_bytes += m.index_bytes;
    memory.arena_bytes += m.arena_bytes;
    memory.other_bytes += m.other_bytes;
    memory.total_bytes += m.total_bytes;
    memory.raw_row_bytes = m.raw_row_bytes;
  }
  const double bytes_per_row =
      stats_.rows == 0 ? 0.0 : static_cast<double>(memory.total_bytes) / stats_.rows;
  const DenseStore* dense = shards[0]->dense();
  const auto mib = [](size_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
  LOG(INFO) << std::fixed << std::setprecision(1) << "job finished: " << stats_.rows << " rows in "
            << shards.size() << " shards (" << stats_.admitted << " admitted, "
            << stats_.admission_rejected << " pushed keys rejected by admission, " << stats_.evicted
            << " evicted), sparse memory " << mib(memory.total_bytes) << " MiB (index "
            << mib(memory.index_bytes) << ", arena " << mib(memory.arena_bytes) << ", other "
            << mib(memory.other_bytes) << "; " << bytes_per_row << " bytes per row, raw "
            << memory.raw_row_bytes << "), " << dense->size() << " dense parameters, "
            << stats_.pulls << " pulls, " << stats_.pushes << " pushes, " << stats_.rejected
            << " rejected requests (" << stats_.expired
            << " expired in queue); pull answers: " << answers_.counters().reused
            << " reused buffers, " << answers_.counters().allocated << " allocated";
  return Status::OK();
}

void ParameterServer::StopShards() {
  if (shards_stopped_) return;
  for (auto& part : partitions_) {
    for (auto& shard : part->shards) shard->Stop();
  }
  shards_stopped_ = true;
}

void ParameterServer::CollectTableStats() {
  CHECK(shards_stopped_) << "the shard threads own the tables until they stop";
  stats_.rows = stats_.admitted = stats_.admission_rejected = stats_.evicted = 0;
  stats_.sparse_memory_bytes = 0;
  const auto& shards = partitions_[0]->shards;
  stats_.shard_threads = static_cast<int>(shards.size());
  stats_.rows_per_shard.clear();
  for (const auto& shard : shards) {
    const SparseTable& t = shard->table();
    stats_.rows += static_cast<int64_t>(t.size());
    stats_.rows_per_shard.push_back(static_cast<int64_t>(t.size()));
    stats_.admitted += t.counters().admitted;
    stats_.admission_rejected += t.counters().rejected;
    stats_.evicted += t.counters().evicted;
    stats_.sparse_memory_bytes += static_cast<int64_t>(t.memory_bytes());
  }
}

void ParameterServer::Reject(const Incoming& request, const Status& error) {
  ++stats_.rejected;
  RequestMetric(request.msg.meta.op(), /*error=*/true)->Increment();
  if (error.code() == StatusCode::kDeadlineExceeded) ++stats_.expired;
  LOG_EVERY_N(WARNING, 100) << "rejected " << wire::Op_Name(request.msg.meta.op()) << " from node "
                            << request.msg.meta.sender() << ": " << error;
  member_->rpc().ReplyError(request, error);
}

void ParameterServer::Handle(Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  Rpc& rpc = member_->rpc();
  RequestMetric(meta.op(), /*error=*/false)->Increment();
  if (meta.op() != wire::PING && meta.cluster_epoch() != rpc.epoch()) {
    // The sender, or this server, has not heard of the newest partition map
    // yet: the sender resends once both have.
    Reject(request,
           Status::StaleEpoch("request of cluster epoch " + std::to_string(meta.cluster_epoch()) +
                              ", this server is in epoch " + std::to_string(rpc.epoch())));
    return;
  }
  if (meta.timeout_ms() <= 0) {
    Reject(request, Status::InvalidArgument("request without a deadline (timeout_ms " +
                                            std::to_string(meta.timeout_ms()) + ")"));
    return;
  }
  if (shards_stopped_ && meta.op() != wire::PING) {
    Reject(request, Status::Unavailable("this server has stopped serving (the job ended)"));
    return;
  }
  auto task = std::make_shared<ShardTask>();
  switch (meta.op()) {
    case wire::PING:
      rpc.Reply(request, Message());
      return;
    case wire::UPDATE_COUNTS: {
      // Of the partitions this server serves (their serving replica's counts).
      Message reply;
      wire::UpdateCounts* u = reply.meta.mutable_update_counts();
      for (const auto& part : partitions_) {
        if (!part->primary) continue;
        const PushWindow::Counts c = part->window->counts();
        u->set_applied(u->applied() + c.applied);
        u->set_duplicates_dropped(u->duplicates_dropped() + c.duplicates_dropped);
        u->set_pulls_deduplicated(u->pulls_deduplicated() + c.pulls_deduplicated);
        u->set_nonfinite_pushes_rejected(u->nonfinite_pushes_rejected() + part->nonfinite_rejected);
        u->set_nonfinite_rows_skipped(u->nonfinite_rows_skipped() + part->nonfinite_rows_skipped);
      }
      rpc.Reply(request, std::move(reply));
      return;
    }
    case wire::REPLICATE:
      return HandleReplicate(std::move(request));
    case wire::COPY_PARTITION:
      return HandleCopy(std::move(request));
    case wire::SNAPSHOT: {
      if (meta.sender() != kSchedulerNodeId || !meta.has_checkpoint() ||
          meta.checkpoint().dir().empty()) {
        Reject(request, Status::InvalidArgument("SNAPSHOT comes from the scheduler with a dir"));
        return;
      }
      if (meta.checkpoint().id() <= snapshot_started_) {
        // A resent SNAPSHOT: answered again once copied, never copied twice.
        if (meta.checkpoint().id() <= snapshot_answered_) rpc.Reply(request, Message());
        return;
      }
      snapshot_started_ = meta.checkpoint().id();
      // Every partition this server is the primary of is checkpointed (a
      // backup's copy is the same rows).
      std::vector<Partition*> primaries;
      for (auto& part : partitions_) {
        if (part->primary) primaries.push_back(part.get());
      }
      snapshot_parts_ = static_cast<int>(primaries.size());
      for (size_t k = 0; k < primaries.size(); ++k) {
        auto snap = std::make_shared<ShardTask>();
        snap->kind = ShardTask::Kind::kSnapshot;
        snap->partition = primaries[k]->id;
        snap->delta = meta.checkpoint().delta();
        snap->snapshots.resize(primaries[k]->shards.size());
        snap->deadline = Deadline::In(meta.timeout_ms());
        // The last one carries the request (the reply goes once all are done).
        if (k + 1 == primaries.size()) {
          snap->request = std::move(request);
        } else {
          snap->request.msg.meta = request.msg.meta;
          snap->request.reply_to = request.reply_to;
        }
        Submit(*primaries[k], std::move(snap));
      }
      return;
    }
    default:
      if (!DataTaskKind(meta.op(), &task->kind)) {
        Reject(request,
               Status::InvalidArgument("a server does not serve op " + wire::Op_Name(meta.op())));
        return;
      }
      break;
  }
  const int pid = meta.partition() >= 0 ? meta.partition() : member_->self().rank();
  Partition* part = FindPartition(pid);
  if (part == nullptr || !part->primary) {
    Reject(request, Status::StaleEpoch("server " + std::to_string(member_->self().rank()) +
                                       " is not the primary of partition " + std::to_string(pid) +
                                       " in epoch " + std::to_string(rpc.epoch())));
    return;
  }
  task->partition = pid;
  // The server's clock starts at arrival, so it never drops a request its
  // sender still waits for.
  task->deadline = Deadline::In(meta.timeout_ms());
  task->request = std::move(request);
  Status s = task->sparse() ? PrepareSparse(*part, task.get()) : PrepareDense(*part, task.get());
  if (!s.ok()) {
    Reject(task->request, s);
    return;
  }
  if (task->kind != ShardTask::Kind::kInitDense && !Admit(*part, task.get())) return;
  if (task->kind == ShardTask::Kind::kPushSparse || task->kind == ShardTask::Kind::kPushDense ||
      task->kind == ShardTask::Kind::kInitDense) {
    // Updates are numbered in the order the shards serve them: a copy cut
    // at a seq holds exactly the updates before it.
    task->replica_seq = part->next_seq++;
  }
  Submit(*part, std::move(task));
}

bool ParameterServer::Admit(Partition& part, ShardTask* task) {
  const wire::Meta& meta = task->request.msg.meta;
  if (meta.incarnation() == 0) return true;  // a sender that never resends (tests, tools)
  const bool push =
      task->kind == ShardTask::Kind::kPushSparse || task->kind == ShardTask::Kind::kPushDense;
  const RequestKey key{meta.sender(), meta.incarnation(), meta.request_id()};
  const RequestWindow::Seen seen = part.window->Begin(key, meta.done_below(), push);
  VLOG_IF(1, seen != RequestWindow::Seen::kNew)
      << wire::Op_Name(meta.op()) << " " << key.id << " from node " << key.sender << " partition "
      << part.id << ": a copy (" << static_cast<int>(seen) << ", done_below " << meta.done_below()
      << ")";
  switch (seen) {
    case RequestWindow::Seen::kNew:
      task->in_window = true;
      task->record_push = push;
      task->push_key = key;
      return true;
    case RequestWindow::Seen::kDone:
      // Applied before: the copy gets the answer the original got, unless
      // the original still waits for the backup (it will be answered).
      if (part.awaiting_keys.count({key.sender, key.incarnation, key.id}) == 0) {
        AcknowledgeUpdate(part, task->request);
      }
      return false;
    case RequestWindow::Seen::kInProgress:  // the original will be answered
    case RequestWindow::Seen::kStale:       // nobody waits for it
      return false;
  }
  return false;
}

Status ParameterServer::PrepareSparse(Partition& part, ShardTask* task) {
  const Message& msg = task->request.msg;
  const bool pull = task->kind == ShardTask::Kind::kPullSparse;
  if (pull) {
    MTPS_RETURN_IF_ERROR(msg.Expect({wire::U64}));
  } else {
    MTPS_RETURN_IF_ERROR(msg.Expect({wire::U64, wire::F32}));
  }
  const size_t n = msg.payloads[0].count();
  const size_t dim = static_cast<size_t>(dim_);
  if (n > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument(wire::Op_Name(msg.meta.op()) + " of " + std::to_string(n) +
                                   " keys: at most 2^32 - 1 per request");
  }
  task->keys = msg.payloads[0].Data<uint64_t>(&task->key_copy);
  task->num_keys = n;
  if (pull) {
    const size_t bytes = n * dim * sizeof(float);
    if (bytes > kMaxPullBytes) {
      return Status::InvalidArgument("PULL_SPARSE of " + std::to_string(n) + " keys of dim " +
                                     std::to_string(dim) + " needs " + std::to_string(bytes >> 20) +
                                     " MiB, over the " + std::to_string(kMaxPullBytes >> 20) +
                                     " MiB limit per request");
    }
    task->create_missing = msg.meta.create_missing();
    task->pull_count = n * dim;
    try {
      // Every element is written by a shard: no zero-fill (it cost ~15% of
      // a dim-64 pull).
      task->pull_values = answers_.Acquire(task->pull_count);
    } catch (const std::bad_alloc&) {
      return Status::Unavailable("out of memory for a pull answer of " +
                                 std::to_string(bytes >> 20) + " MiB");
    }
    return Status::OK();
  }
  const size_t want = n * dim;
  if (n * (sizeof(uint64_t) + dim * sizeof(float)) > kMaxPushBytes) {
    return Status::InvalidArgument("PUSH_SPARSE of " + std::to_string(n) + " keys of dim " +
                                   std::to_string(dim) + " is over the " +
                                   std::to_string(kMaxPushBytes >> 20) + " MiB limit per request");
  }
  if (msg.payloads[1].count() != want) {
    return Status::InvalidArgument("PUSH_SPARSE of " + std::to_string(n) + " keys needs " +
                                   std::to_string(want) + " gradient values (dim " +
                                   std::to_string(dim) + "), got " +
                                   std::to_string(msg.payloads[1].count()));
  }
  task->values = msg.payloads[1].Data<float>(&task->value_copy);
  task->num_values = want;
  return CheckFinite(part, task);
}

Status ParameterServer::CheckFinite(Partition& part, ShardTask* task) {
  if (AllFinite(task->values, task->num_values)) return Status::OK();
  const wire::Meta& meta = task->request.msg.meta;
  const bool skip =
      member_->config().server().nonfinite_gradients() == config::ServerConfig::SKIP_ROWS;
  const std::string from =
      wire::Op_Name(meta.op() == wire::REPLICATE ? meta.replica_op() : meta.op()) + " from node " +
      std::to_string(meta.sender());
  if (task->kind == ShardTask::Kind::kInitDense) {
    const size_t i = FirstNonfinite(task->values, task->num_values);
    return Status::InvalidArgument(from + ": initial value " + std::to_string(i) + " is " +
                                   std::to_string(task->values[i]) + "; not initialised");
  }
  if (task->kind == ShardTask::Kind::kPushDense) {
    const size_t i = FirstNonfinite(task->values, task->num_values);
    if (!skip) {
      if (!task->replicated) ++part.nonfinite_rejected;
      return Status::InvalidArgument(from + ": dense gradient " + std::to_string(i) + " of " +
                                     std::to_string(task->num_values) + " is " +
                                     std::to_string(task->values[i]) +
                                     "; nothing applied (server.nonfinite_gradients: REJECT)");
    }
    ++part.nonfinite_rows_skipped;
    task->skip_dense = true;
    return Status::OK();
  }
  // A sparse push: find its bad rows.
  const size_t dim = static_cast<size_t>(dim_);
  std::vector<uint64_t> keys;
  std::vector<float> values;
  if (skip) {
    keys.reserve(task->num_keys);
    values.reserve(task->num_values);
  }
  size_t bad = 0, first_bad = task->num_keys, first_value = 0;
  for (size_t r = 0; r < task->num_keys; ++r) {
    const float* row = task->values + r * dim;
    if (AllFinite(row, dim)) {
      if (skip) {
        keys.push_back(task->keys[r]);
        values.insert(values.end(), row, row + dim);
      }
      continue;
    }
    if (bad++ == 0) {
      first_bad = r;
      first_value = FirstNonfinite(row, dim);
    }
  }
  if (!skip) {
    if (!task->replicated) ++part.nonfinite_rejected;
    return Status::InvalidArgument(
        from + ": " + std::to_string(bad) + " of " + std::to_string(task->num_keys) +
        " rows hold non-finite gradients (first: key " + std::to_string(task->keys[first_bad]) +
        ", element " + std::to_string(first_value) + " is " +
        std::to_string(task->values[first_bad * dim + first_value]) +
        "); nothing applied (server.nonfinite_gradients: REJECT)");
  }
  part.nonfinite_rows_skipped += static_cast<int64_t>(bad);
  VLOG(1) << from << ": dropped " << bad << " of " << task->num_keys
          << " rows with non-finite gradients (server.nonfinite_gradients: SKIP_ROWS)";
  // The task now points at the finite rows only (the frames stay as they
  // came: a backup filters its copy the same way).
  task->key_copy = std::move(keys);
  task->value_copy = std::move(values);
  task->keys = task->key_copy.data();
  task->values = task->value_copy.data();
  task->num_keys = task->key_copy.size();
  task->num_values = task->value_copy.size();
  return Status::OK();
}

Status ParameterServer::PrepareDense(Partition& part, ShardTask* task) {
  const Message& msg = task->request.msg;
  if (task->kind == ShardTask::Kind::kPullDense) return Status::OK();
  MTPS_RETURN_IF_ERROR(msg.Expect({wire::F32}));
  task->values = msg.payloads[0].Data<float>(&task->value_copy);
  task->num_values = msg.payloads[0].count();
  if (task->kind == ShardTask::Kind::kInitDense) {
    // The block must be this server's share of the whole array: a
    // wrong-sized first INIT_DENSE would otherwise fix a wrong block for the
    // whole job. The total is checked before any arithmetic on it.
    const int64_t total = msg.meta.dense_total();
    if (total <= 0 || total > kMaxDenseParams) {
      return Status::InvalidArgument("INIT_DENSE for a dense array of " + std::to_string(total) +
                                     " values: must be in [1, 2^40]");
    }
    const DenseBlock block = DenseBlockOf(total, task->partition, member_->num_servers());
    if (static_cast<int64_t>(task->num_values) != block.size()) {
      return Status::InvalidArgument(
          "INIT_DENSE of " + std::to_string(task->num_values) + " values for a dense array of " +
          std::to_string(total) + ": partition " + std::to_string(task->partition) + " of " +
          std::to_string(member_->num_servers()) + " holds " + std::to_string(block.size()));
    }
  }
  return CheckFinite(part, task);
}

void ParameterServer::Submit(Partition& part, std::shared_ptr<ShardTask> task) {
  ++queued_requests_;
  queued_pull_bytes_ += task->pull_values.capacity * sizeof(float);
  task->submitted = SteadyClock::now();
  // (Not with a task_done hook: a test blocking there means a shard thread.)
  if (part.shards.size() == 1 && task->sparse() && task->num_keys <= kServeHereMaxKeys &&
      !test_hooks_.task_done) {
    // A small request to an idle single shard is served on this thread,
    // and answered at once.
    task->remaining.store(1, std::memory_order_relaxed);
    if (part.shards[0]->TryServeHere(task)) {
      ++stats_.served_here;
      FinishQueued(std::move(task));
      return;
    }
  }
  SubmitToShards(part.shards, std::move(task));
  WaitForRoom();
}

void ParameterServer::OnDone(std::shared_ptr<ShardTask> task) {
  if (test_hooks_.task_done) test_hooks_.task_done();
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    was_empty = done_.empty();
    done_.push_back(std::move(task));
  }
  // The receive thread drains the whole list after a wake, so one wake per
  // empty -> non-empty transition suffices.
  if (was_empty) member_->rpc().transport()->Wake();
}

void ParameterServer::WaitForRoom() {
  const auto full = [this] {
    return queued_requests_ >= kMaxQueuedRequests || queued_pull_bytes_ > kMaxQueuedPullBytes;
  };
  if (!full()) return;
  ++stats_.room_waits;
  if (test_hooks_.room_wait) test_hooks_.room_wait();
  // Requests wait unread meanwhile; heartbeats, responses and the shards'
  // finished work (the wake handler, SendFinished) go on. Shards never block
  // on anything but their queues, so room comes soon; the deadline only
  // bounds the wait (past it the queues run over their bound).
  const int64_t limit_ms = member_->config().cluster().request_timeout_ms();
  member_->rpc().PollHoldingRequests(Deadline::In(limit_ms), [&full] { return !full(); });
  LOG_IF(WARNING, full()) << "the shards' queues stayed full for " << limit_ms << " ms";
}

void ParameterServer::SendFinished() {
  std::vector<std::shared_ptr<ShardTask>> finished;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    finished.swap(done_);
  }
  for (auto& task : finished) FinishQueued(std::move(task));
}

void ParameterServer::FinishQueued(std::shared_ptr<ShardTask> task) {
  // The restore task was never counted (RestoreCheckpoint submits it).
  if (task->kind != ShardTask::Kind::kRestore) {
    --queued_requests_;
    queued_pull_bytes_ -= task->pull_values.capacity * sizeof(float);
  }
  Finish(std::move(task));
}

void ParameterServer::Finish(std::shared_ptr<ShardTask> task_ptr) {
  ShardTask& task = *task_ptr;
  const wire::Meta& meta = task.request.msg.meta;
  Partition* part = FindPartition(task.partition);
  if (task.status.ok()) {
    // Every shard is done with it: no lock is contended here.
    std::lock_guard<std::mutex> lock(task.failure_mu);
    if (!task.failure.ok()) task.status = task.failure;
  }
  if (task.replicated) {
    // A backup applied its primary's update: acknowledge it.
    if (!task.status.ok()) {
      LOG(ERROR) << "partition " << task.partition << ": replicated update " << task.replica_seq
                 << " failed on the backup: " << task.status;
      member_->rpc().ReplyError(task.request, task.status);
    } else {
      member_->rpc().Reply(task.request, Message());
    }
    return;
  }
  // A pull, or a push that changed nothing, leaves the window: a resend
  // of it is served anew.
  const bool applied = !task.expired() && task.status.ok();
  if (task.in_window && (!task.record_push || !applied) && part != nullptr) {
    part->window->Forget(task.push_key);
  }
  const bool update = task.kind == ShardTask::Kind::kPushSparse ||
                      task.kind == ShardTask::Kind::kPushDense ||
                      task.kind == ShardTask::Kind::kInitDense;
  if (update && !applied && part != nullptr && part->primary && part->backup_node >= 0) {
    // Its seq must still reach the backup, as a no-op, or the updates after
    // it would wait there forever.
    Replicate(*part, task_ptr, /*applied=*/false);
  }
  if (task.expired()) {
    Reject(task.request, Status::DeadlineExceeded(
                             wire::Op_Name(meta.op()) + " waited in the server's queue past its " +
                             std::to_string(meta.timeout_ms()) + " ms deadline; not applied"));
    return;
  }
  if (!task.status.ok()) {
    Reject(task.request, task.status);
    return;
  }
  Message response;
  switch (task.kind) {
    case ShardTask::Kind::kPullSparse:
      response.payloads.push_back(answers_.ToPayload(std::move(task.pull_values), task.pull_count));
      ++stats_.pulls;
      stats_.keys_pulled += static_cast<int64_t>(task.num_keys);
      pull_keys_metric_->Increment(static_cast<double>(task.num_keys));
      break;
    case ShardTask::Kind::kPushSparse:
      ++stats_.pushes;
      stats_.keys_pushed += static_cast<int64_t>(task.num_keys);
      push_keys_metric_->Increment(static_cast<double>(task.num_keys));
      break;
    case ShardTask::Kind::kPullDense:
      response.payloads.push_back(Payload::FromVector(std::move(task.dense_values)));
      break;
    case ShardTask::Kind::kPushDense:
    case ShardTask::Kind::kInitDense:
      break;
    case ShardTask::Kind::kSnapshot:
      return FinishSnapshot(task);
    case ShardTask::Kind::kRestore:
      return;  // RestoreCheckpoint and LoadCopy wait for it themselves
    case ShardTask::Kind::kCopy:
      return FinishCopy(task);
  }
  if (update && part != nullptr && part->primary && part->backup_node >= 0) {
    return Replicate(*part, std::move(task_ptr),
                     /*applied=*/true);  // answered when the backup has it
  }
  if (update && part != nullptr) return AcknowledgeUpdate(*part, task.request);
  member_->rpc().Reply(task.request, std::move(response));
}

void ParameterServer::AcknowledgeUpdate(Partition& part, const Incoming& request) {
  member_->rpc().Reply(request, Message());
  if (part.promoted && !part.first_ack_logged) {
    part.first_ack_logged = true;
    LOG(INFO) << "partition " << part.id << ": first update acknowledged as its primary, "
              << SecondsSince(part.promoted_at) << " s after the promotion";
  }
}

void ParameterServer::Replicate(Partition& part, std::shared_ptr<ShardTask> task, bool applied) {
  Message msg(wire::REPLICATE);
  const wire::Meta& orig = task->request.msg.meta;
  const uint64_t seq = task->replica_seq;
  msg.meta.set_partition(part.id);
  msg.meta.set_replica_seq(seq);
  if (!applied) {
    // A no-op (the primary did not apply it): the backup only moves on.
    msg.meta.set_replica_op(wire::OP_UNSPECIFIED);
    Status s = member_->rpc().StartAsync(part.backup_node, std::move(msg),
                                         member_->config().cluster().request_timeout_ms(),
                                         [](StatusOr<Message>&&) {});
    if (!s.ok()) LOG(WARNING) << "cannot replicate no-op " << seq << ": " << s;
    return;
  }
  msg.meta.set_replica_op(orig.op());
  msg.meta.set_dense_total(orig.dense_total());
  wire::Origin* o = msg.meta.mutable_origin();
  o->set_sender(orig.sender());
  o->set_incarnation(orig.incarnation());
  o->set_request_id(orig.request_id());
  // The push's own frames, shared (no copy).
  for (Payload& p : task->request.msg.payloads) msg.payloads.push_back(p.Share());
  task->awaiting_backup = true;
  part.awaiting_keys.insert({orig.sender(), orig.incarnation(), orig.request_id()});
  part.awaiting_backup.emplace(seq, task);
  const int id = part.id;
  Status s = member_->rpc().StartAsync(
      part.backup_node, std::move(msg), member_->config().cluster().request_timeout_ms(),
      [this, id, seq](StatusOr<Message>&& answer) { OnBackupAnswer(id, seq, answer); });
  if (!s.ok()) OnBackupAnswer(id, seq, s);
}

void ParameterServer::OnBackupAnswer(int partition, uint64_t seq, const StatusOr<Message>& answer) {
  Partition* part = FindPartition(partition);
  if (part == nullptr) return;
  auto it = part->awaiting_backup.find(seq);
  if (it == part->awaiting_backup.end()) return;  // answered already (the backup was dropped)
  std::shared_ptr<ShardTask> task = std::move(it->second);
  part->awaiting_backup.erase(it);
  const wire::Meta& orig = task->request.msg.meta;
  part->awaiting_keys.erase({orig.sender(), orig.incarnation(), orig.request_id()});
  if (answer.ok()) {
    AcknowledgeUpdate(*part, task->request);
  } else {
    // Applied here, not known to be held by the backup: the client must not
    // count it as safe. Its resend is answered from the window once the
    // partition has a backup again or none (after a failover).
    LOG(WARNING) << "partition " << partition << ": the backup did not acknowledge update " << seq
                 << ": " << answer.status();
    Reject(task->request,
           Status::Unavailable("the backup of partition " + std::to_string(partition) +
                               " did not acknowledge: " + answer.status().message()));
  }
}

void ParameterServer::HandleReplicate(Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  Partition* part = FindPartition(meta.partition());
  if (part == nullptr || part->primary) {
    Reject(request,
           Status::StaleEpoch("server " + std::to_string(member_->self().rank()) +
                              " is not a backup of partition " + std::to_string(meta.partition())));
    return;
  }
  const uint64_t seq = meta.replica_seq();
  if (part->loading) {
    part->early.emplace(seq, std::move(request));  // applied once the copy is in
    return;
  }
  if (seq < part->next_seq) {
    member_->rpc().Reply(request, Message());  // a copy of one applied already
    return;
  }
  if (seq > part->next_seq) {
    // Ahead of a lost or delayed one: held until the gap is filled (the
    // primary resends it).
    constexpr size_t kMaxEarly = 4096;
    if (part->early.size() >= kMaxEarly) {
      Reject(request, Status::Unavailable("too many replicated updates ahead of " +
                                          std::to_string(part->next_seq)));
      return;
    }
    part->early.emplace(seq, std::move(request));
    return;
  }
  ApplyReplicated(*part, std::move(request));
  DrainEarly(*part);
}

void ParameterServer::DrainEarly(Partition& part) {
  while (!part.early.empty() && part.early.begin()->first <= part.next_seq) {
    auto it = part.early.begin();
    Incoming next = std::move(it->second);
    const uint64_t seq = it->first;
    part.early.erase(it);
    if (seq < part.next_seq) {
      member_->rpc().Reply(next, Message());  // held in the copy already
    } else {
      ApplyReplicated(part, std::move(next));
    }
  }
}

void ParameterServer::HandleCopy(Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  Partition* part = FindPartition(meta.partition());
  if (part == nullptr || !part->primary) {
    Reject(request, Status::StaleEpoch("server " + std::to_string(member_->self().rank()) +
                                       " is not the primary of partition " +
                                       std::to_string(meta.partition())));
    return;
  }
  // From this point in the shards' order on, every update goes to the new
  // backup too (it holds them until its copy is loaded); the copy holds
  // every update numbered before it.
  auto task = std::make_shared<ShardTask>();
  task->kind = ShardTask::Kind::kCopy;
  task->partition = part->id;
  task->replica_seq = part->next_seq;
  task->snapshots.resize(part->shards.size());
  task->deadline = Deadline::In(int64_t{24} * 3600 * 1000);
  task->request = std::move(request);
  part->backup_node = task->request.msg.meta.sender();
  LOG(INFO) << "partition " << part->id << ": copying it to node " << part->backup_node
            << " at update " << task->replica_seq;
  Submit(*part, std::move(task));
}

void ParameterServer::FinishCopy(ShardTask& task) {
  Message reply;
  reply.meta.set_partition(task.partition);
  reply.meta.set_replica_seq(task.replica_seq);
  auto frame = [&reply](const std::string& bytes) {
    reply.payloads.push_back(
        Payload::Copy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  };
  size_t bytes = 0;
  for (const SparseTableSnapshot& shard : task.snapshots) {
    std::string rows;
    Status s = WriteSparseSnapshot(shard, [&rows](const char* data, size_t size) {
      rows.append(data, size);
      return Status::OK();
    });
    if (!s.ok()) return Reject(task.request, s);
    bytes += rows.size();
    frame(rows);
  }
  frame(task.dense_bytes);
  frame(task.window_bytes);
  LOG(INFO) << "partition " << task.partition << ": copy of " << bytes << " bytes of rows sent";
  member_->rpc().Reply(task.request, std::move(reply));
}

Status ParameterServer::Rejoin() {
  Rpc& rpc = member_->rpc();
  for (auto& part_ptr : partitions_) {
    Partition& part = *part_ptr;
    Message ask(wire::COPY_PARTITION);
    ask.meta.set_partition(part.id);
    const int primary = member_->PrimaryOf(part.id);
    auto copy = rpc.Call(primary, std::move(ask), member_->config().cluster().request_timeout_ms());
    if (!copy.ok()) {
      return Status(copy.status().code(),
                    "rejoining: copying partition " + std::to_string(part.id) + " from node " +
                        std::to_string(primary) + ": " + copy.status().message());
    }
    MTPS_RETURN_IF_ERROR(LoadCopy(part, *copy));
    Message joined(wire::REJOINED);
    joined.meta.set_partition(part.id);
    MTPS_RETURN_IF_ERROR(rpc.Call(kSchedulerNodeId, std::move(joined),
                                  member_->config().cluster().request_timeout_ms())
                             .status());
  }
  return Status::OK();
}

Status ParameterServer::LoadCopy(Partition& part, const Message& copy) {
  const size_t n = part.shards.size();
  if (copy.payloads.size() != n + 2) {
    return Status::Corruption("copy of partition " + std::to_string(part.id) + ": " +
                              std::to_string(copy.payloads.size()) + " frames, expected " +
                              std::to_string(n + 2) + " (shard_threads must agree)");
  }
  for (const Payload& p : copy.payloads) {
    if (p.dtype() != wire::U8) return Status::Corruption("copy frames must be U8");
  }
  auto bytes_of = [&copy](size_t i) {
    const zmq::message_t& m = copy.payloads[i].bytes();
    return std::string(static_cast<const char*>(m.data()), m.size());
  };
  const std::string name = "copy of partition " + std::to_string(part.id);
  auto task = std::make_shared<ShardTask>();
  task->kind = ShardTask::Kind::kRestore;
  task->partition = part.id;
  task->deadline = Deadline::In(int64_t{24} * 3600 * 1000);
  task->restore_sparse.resize(n);
  task->restore_names.resize(n);
  task->shard_status.resize(n);
  for (size_t i = 0; i < n; ++i) {
    task->restore_sparse[i] = bytes_of(i);
    task->restore_names[i] = name + ", shard " + std::to_string(i);
  }
  task->dense_bytes = bytes_of(n);
  task->dense_name = name + ", dense block";
  task->window_bytes = bytes_of(n + 1);
  task->window_name = name + ", push window";
  MTPS_RETURN_IF_ERROR(LoadIntoShards(part, task, name));
  part.next_seq = copy.meta.replica_seq();
  part.loading = false;
  LOG(INFO) << "partition " << part.id << ": copy loaded (update " << part.next_seq << "), "
            << part.early.size() << " updates waiting behind it";
  DrainEarly(part);
  return Status::OK();
}

void ParameterServer::ApplyReplicated(Partition& part, Incoming&& request) {
  const wire::Meta& meta = request.msg.meta;
  // This seq's turn is used whatever happens to it, so a bad update cannot
  // stall the ones after it.
  ++part.next_seq;
  if (meta.replica_op() == wire::OP_UNSPECIFIED) {
    member_->rpc().Reply(request, Message());  // a no-op: the primary did not apply it
    return;
  }
  auto task = std::make_shared<ShardTask>();
  // Updates only: a pull changes nothing to replicate.
  if (!DataTaskKind(meta.replica_op(), &task->kind) || task->kind == ShardTask::Kind::kPullSparse ||
      task->kind == ShardTask::Kind::kPullDense) {
    Reject(request, Status::InvalidArgument("REPLICATE of op " + wire::Op_Name(meta.replica_op())));
    return;
  }
  task->partition = part.id;
  task->replicated = true;
  task->replica_seq = meta.replica_seq();
  // The primary applied it: the backup must too, however long it waited.
  task->deadline = Deadline::In(int64_t{24} * 3600 * 1000);
  task->request = std::move(request);
  Status s = task->sparse() ? PrepareSparse(part, task.get()) : PrepareDense(part, task.get());
  if (!s.ok()) {
    Reject(task->request, s);
    return;
  }
  if (task->kind != ShardTask::Kind::kInitDense && task->request.msg.meta.has_origin()) {
    // Recorded as the original push, so a client's resend to this server
    // after a failover is recognised.
    const wire::Origin& o = task->request.msg.meta.origin();
    task->record_push = true;
    task->push_key = RequestKey{o.sender(), o.incarnation(), o.request_id()};
  }
  Submit(part, std::move(task));
}

void ParameterServer::OnPartitionMap() {
  const wire::PartitionMap& map = member_->partition_map();
  const int self = member_->self().node_id();
  for (auto& part : partitions_) {
    if (part->id < 0 || part->id >= map.partitions_size()) continue;
    const wire::PartitionMap::Placement& p = map.partitions(part->id);
    if (!part->primary && p.primary() == self) {
      // Promoted: what the backup applied is the partition now. Updates
      // held ahead of a gap were never acknowledged; their clients resend.
      LOG(INFO) << "partition " << part->id << ": now its primary (epoch " << member_->rpc().epoch()
                << ", " << part->next_seq << " updates applied, " << part->early.size()
                << " held ahead of a gap dropped)";
      part->primary = true;
      part->early.clear();
      part->backup_node = -1;
      part->promoted = true;
      part->promoted_at = SteadyClock::now();
    }
    // A rejoining server copying this partition already gets its updates.
    const int want = p.backup() >= 0 ? p.backup() : p.pending_backup();
    if (part->primary && want != part->backup_node) {
      part->backup_node = want;
      if (want < 0) {
        // The backup is gone: what waited for it is answered (held here alone).
        LOG(WARNING) << "partition " << part->id << " has no backup now; "
                     << part->awaiting_backup.size() << " updates were waiting for it";
        auto waiting = std::move(part->awaiting_backup);
        part->awaiting_backup.clear();
        part->awaiting_keys.clear();
        for (auto& [seq, task] : waiting) member_->rpc().Reply(task->request, Message());
      }
    }
  }
}

}  // namespace mtps
