// A job's model loaded from one of its checkpoints (see
// ps/offline/model_checkpoint.h).
#include "ps/offline/model_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "common/base/durable_file.h"
#include "ps/scheduler/checkpoint_store.h"
#include "ps/server/server_config.h"
#include "ps/server/server_shard.h"
#include "ps/table/dense_store.h"

namespace mtps {
namespace fs = std::filesystem;

namespace {

bool IsDirectory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

std::string Join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// Ascending: "1, 2, 4".
std::string IdList(std::vector<uint64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> names;
  for (uint64_t id : ids) names.push_back(std::to_string(id));
  return names.empty() ? "none" : Join(names, ", ");
}

// The newest intact checkpoint of one root; every newer one that fails
// Verify is noted. NotFound when the root has no intact one.
StatusOr<CheckpointChoice> NewestIntact(const std::string& root, std::vector<std::string>* notes) {
  const CheckpointStore store(root);
  for (uint64_t id : store.ListIds()) {
    auto manifest = store.Verify(id);
    if (!manifest.ok()) {
      notes->push_back("checkpoint " + std::to_string(id) + " is not intact (" +
                       manifest.status().message() + ")");
      continue;
    }
    CheckpointChoice choice;
    choice.root = root;
    choice.dir = store.DirFor(id);
    choice.manifest = std::move(*manifest);
    return choice;
  }
  return Status::NotFound("no intact checkpoint in " + root);
}

}  // namespace

std::vector<std::string> CheckpointRoots(const std::string& run_dir, const config::Config& config) {
  const std::string& dir = config.checkpoint().dir();
  if (!dir.empty() && dir[0] == '/') return {dir};
  const std::string relative = dir.empty() ? "checkpoints" : dir;
  std::vector<std::string> roots{run_dir + "/" + relative};
  // A remote run: each host's copy of the scheduler's directory.
  std::vector<std::string> hosts;
  std::error_code ec;
  for (fs::directory_iterator it(run_dir + "/hosts", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string root = it->path().string() + "/" + relative;
    if (IsDirectory(root)) hosts.push_back(root);
  }
  std::sort(hosts.begin(), hosts.end());
  roots.insert(roots.end(), hosts.begin(), hosts.end());
  return roots;
}

StatusOr<CheckpointChoice> ChooseCheckpoint(const std::string& run_dir,
                                            const config::Config& config, int64_t id) {
  const std::vector<std::string> roots = CheckpointRoots(run_dir, config);
  if (id >= 0) {
    std::vector<std::string> seen;
    for (const std::string& root : roots) {
      const CheckpointStore store(root);
      const std::vector<uint64_t> ids = store.ListIds();
      if (std::find(ids.begin(), ids.end(), static_cast<uint64_t>(id)) == ids.end()) {
        seen.push_back(root + " (checkpoints there: " + IdList(ids) + ")");
        continue;
      }
      auto manifest = store.Verify(static_cast<uint64_t>(id));
      if (!manifest.ok()) {
        return Status(
            manifest.status().code(),
            "checkpoint " + std::to_string(id) + " is not intact: " + manifest.status().message());
      }
      CheckpointChoice choice;
      choice.root = root;
      choice.dir = store.DirFor(static_cast<uint64_t>(id));
      choice.manifest = std::move(*manifest);
      return choice;
    }
    return Status::NotFound("no checkpoint " + std::to_string(id) + " in " + Join(seen, ", "));
  }
  // The run dir's own root first; the hosts' copies only when it has none.
  std::vector<std::string> search{roots.front()};
  if (CheckpointStore(roots.front()).ListIds().empty()) {
    search.assign(roots.begin() + 1, roots.end());
  }
  std::vector<std::string> notes;
  bool any = false;
  StatusOr<CheckpointChoice> best = Status::NotFound("");
  for (const std::string& root : search) {
    if (CheckpointStore(root).ListIds().empty()) continue;
    any = true;
    std::vector<std::string> root_notes;
    auto choice = NewestIntact(root, &root_notes);
    for (const std::string& note : root_notes) {
      notes.push_back(search.size() > 1 ? root + ": " + note : note);
    }
    if (!choice.ok()) continue;
    const bool newer = !best.ok() || choice->manifest.id() > best->manifest.id() ||
                       (choice->manifest.id() == best->manifest.id() &&
                        choice->manifest.unix_time() > best->manifest.unix_time());
    if (newer) best = std::move(choice);
  }
  if (!any) {
    return Status::NotFound(
        "no checkpoint in " + Join(roots, " or ") +
        (roots.size() == 1 ? " (nor in " + run_dir + "/hosts/*/)" : "") +
        ": the job took none (checkpoint.enabled false, or it ended before its first one)");
  }
  if (!best.ok()) {
    return Status::Corruption("no intact checkpoint in " + Join(search, " or ") + ": " +
                              Join(notes, "; "));
  }
  best->notes = std::move(notes);
  return best;
}

bool SameModelSections(const config::Config& a, const config::Config& b) {
  return a.data().SerializeAsString() == b.data().SerializeAsString() &&
         a.model().SerializeAsString() == b.model().SerializeAsString() &&
         a.server().SerializeAsString() == b.server().SerializeAsString();
}

ModelCheckpoint::ModelCheckpoint(const CheckpointChoice& choice, config::Config config)
    : manifest_(choice.manifest),
      dir_(choice.dir),
      config_(std::move(config)),
      partitioner_(std::max(1, choice.manifest.num_servers())) {}

StatusOr<std::unique_ptr<ModelCheckpoint>> ModelCheckpoint::Load(const CheckpointChoice& choice) {
  const checkpoint::Manifest& m = choice.manifest;
  const std::string where = choice.dir + "/" + CheckpointStore::kManifestName;
  config::Config config;
  if (!config.ParseFromString(m.config())) {
    return Status::Corruption(where + ": the job config it holds does not parse");
  }
  if (m.num_servers() < 1 || m.shard_threads() < 1 || m.shard_threads() > kMaxShardThreads) {
    return Status::Corruption(where + ": " + std::to_string(m.num_servers()) + " servers of " +
                              std::to_string(m.shard_threads()) +
                              " shard threads is not a job's shape");
  }
  {
    Status s = ValidateSparseTableOptions(ShardTableOptions(config));
    if (s.ok()) s = ValidateDenseOptimizer(config.server().dense_optimizer());
    if (!s.ok()) return Status::Corruption(where + ": its job config is invalid: " + s.message());
  }
  std::unique_ptr<ModelCheckpoint> ckpt(new ModelCheckpoint(choice, std::move(config)));
  ckpt->shards_ = m.shard_threads();
  ckpt->tables_.resize(static_cast<size_t>(m.num_servers()));
  std::vector<int64_t> dense_sizes(static_cast<size_t>(m.num_servers()));
  for (int p = 0; p < m.num_servers(); ++p) {
    MTPS_RETURN_IF_ERROR(ckpt->LoadPartition(p, &dense_sizes[static_cast<size_t>(p)]));
  }
  // Each server holds the block DenseBlockOf gives it (KvClient's split).
  const int64_t total = static_cast<int64_t>(ckpt->dense_.size());
  if (total <= 0 || total > kMaxDenseParams) {
    return Status::Corruption(choice.dir + ": the servers' dense blocks hold " +
                              std::to_string(total) + " parameters in all");
  }
  for (int p = 0; p < m.num_servers(); ++p) {
    const int64_t want = DenseBlockOf(total, p, m.num_servers()).size();
    if (dense_sizes[static_cast<size_t>(p)] != want) {
      return Status::Corruption(choice.dir + "/server-" + std::to_string(p) + ".dense: holds " +
                                std::to_string(dense_sizes[static_cast<size_t>(p)]) +
                                " parameters; its block of the " + std::to_string(total) + " is " +
                                std::to_string(want));
    }
  }
  return ckpt;
}

StatusOr<std::string> ModelCheckpoint::ReadFile(const std::string& name) const {
  for (const wire::CheckpointFile& f : manifest_.files()) {
    if (f.name() == name) return ReadVerifiedFile(dir_ + "/" + name, f.size(), f.crc32());
  }
  return Status::Corruption(dir_ + "/" + CheckpointStore::kManifestName + " lists no file " + name);
}

Status ModelCheckpoint::LoadPartition(int partition, int64_t* dense_size) {
  const std::string prefix = "server-" + std::to_string(partition);
  const SparseTableOptions options = ShardTableOptions(config_);
  std::vector<SparseTable>& tables = tables_[static_cast<size_t>(partition)];
  for (int i = 0; i < shards_; ++i) {
    const std::string shard = prefix + ".shard-" + std::to_string(i);
    MTPS_ASSIGN_OR_RETURN(std::string bytes, ReadFile(shard));
    tables.emplace_back(options);
    MTPS_RETURN_IF_ERROR(tables.back().Restore(bytes.data(), bytes.size(), dir_ + "/" + shard));
    // Incremental checkpoints: the shard's deltas in id order (their names
    // sort by id), as a resuming server applies them.
    std::vector<std::string> deltas;
    for (const wire::CheckpointFile& f : manifest_.files()) {
      if (f.name().compare(0, shard.size() + 7, shard + ".delta-") == 0) deltas.push_back(f.name());
    }
    std::sort(deltas.begin(), deltas.end());
    for (const std::string& delta : deltas) {
      MTPS_ASSIGN_OR_RETURN(bytes, ReadFile(delta));
      MTPS_RETURN_IF_ERROR(
          tables.back().ApplyDelta(bytes.data(), bytes.size(), dir_ + "/" + delta));
    }
  }
  MTPS_ASSIGN_OR_RETURN(std::string dense_bytes, ReadFile(prefix + ".dense"));
  DenseStore store(config_.server().dense_optimizer(), DenseStore::ModeOf(config_));
  MTPS_RETURN_IF_ERROR(
      store.Restore(dense_bytes.data(), dense_bytes.size(), dir_ + "/" + prefix + ".dense"));
  dense_.insert(dense_.end(), store.values(), store.values() + store.size());
  *dense_size = static_cast<int64_t>(store.size());
  return Status::OK();
}

StatusOr<std::vector<float>> ModelCheckpoint::WorkerModelState(int rank) const {
  const std::string name = "worker-" + std::to_string(rank) + ".state";
  bool listed = false;
  for (const wire::CheckpointFile& f : manifest_.files()) listed = listed || f.name() == name;
  if (!listed) {
    return Status::NotFound(dir_ + " holds no state of worker " + std::to_string(rank) + " (" +
                            std::to_string(manifest_.num_workers()) + " workers)");
  }
  MTPS_ASSIGN_OR_RETURN(std::string bytes, ReadFile(name));
  checkpoint::WorkerState state;
  if (!state.ParseFromString(bytes) || state.rank() != rank) {
    return Status::Corruption(dir_ + "/" + name + ": not the state of worker " +
                              std::to_string(rank));
  }
  return std::vector<float>(state.model_state().begin(), state.model_state().end());
}

void ModelCheckpoint::Lookup(const uint64_t* keys, size_t n, float* out) {
  const size_t dim = static_cast<size_t>(this->dim());
  for (size_t i = 0; i < n; ++i) {
    const int partition = partitioner_.ServerOf(keys[i]);
    const int shard = KeyShard(keys[i], shards_);
    tables_[static_cast<size_t>(partition)][static_cast<size_t>(shard)].Pull(
        keys + i, 1, /*create_missing=*/false, out + i * dim);
  }
}

size_t ModelCheckpoint::rows() const {
  size_t n = 0;
  for (const auto& partition : tables_) {
    for (const SparseTable& t : partition) n += t.size();
  }
  return n;
}

void ModelCheckpoint::ForEachRow(
    const std::function<void(uint64_t key, const float* embedding)>& fn) const {
  for (const auto& partition : tables_) {
    for (const SparseTable& t : partition) t.ForEachRow(fn);
  }
}

}  // namespace mtps
