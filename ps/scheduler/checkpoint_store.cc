// A job's checkpoint directory (see ps/scheduler/checkpoint_store.h).
#include "ps/scheduler/checkpoint_store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <set>

#include <glog/logging.h>

#include "common/base/durable_file.h"

namespace mtps {
namespace fs = std::filesystem;

Status CheckpointStore::Init() const {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec)
    return Status::IoError("cannot create checkpoint directory " + root_ + ": " + ec.message());
  return Status::OK();
}

std::string CheckpointStore::DirFor(uint64_t id) const {
  char name[32];
  std::snprintf(name, sizeof(name), "ckpt-%08" PRIu64, id);
  return root_ + "/" + name;
}

std::vector<uint64_t> CheckpointStore::ListIds() const {
  std::vector<uint64_t> ids;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= 5 || name.compare(0, 5, "ckpt-") != 0) continue;
    if (name.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    ids.push_back(std::stoull(name.substr(5)));
  }
  std::sort(ids.rbegin(), ids.rend());
  return ids;
}

StatusOr<checkpoint::Manifest> CheckpointStore::Verify(uint64_t id) const {
  const std::string dir = DirFor(id);
  const std::string path = dir + "/" + kManifestName;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return Status::NotFound(path + ": no manifest (the checkpoint was not completed)");
  }
  MTPS_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  checkpoint::Manifest manifest;
  if (!manifest.ParseFromString(bytes) || manifest.id() != id) {
    return Status::Corruption(path + ": not a valid manifest of checkpoint " + std::to_string(id));
  }
  for (const wire::CheckpointFile& f : manifest.files()) {
    if (f.name().empty() || f.name().find('/') != std::string::npos) {
      return Status::Corruption(path + ": bad file name '" + f.name() + "'");
    }
    MTPS_RETURN_IF_ERROR(ReadVerifiedFile(dir + "/" + f.name(), f.size(), f.crc32()).status());
  }
  return manifest;
}

StatusOr<checkpoint::Manifest> CheckpointStore::LatestGood(
    std::vector<std::string>* skipped) const {
  for (uint64_t id : ListIds()) {
    auto manifest = Verify(id);
    if (manifest.ok()) return manifest;
    LOG(WARNING) << "skipping checkpoint " << id << ": " << manifest.status().message();
    if (skipped != nullptr) skipped->push_back(manifest.status().message());
  }
  return Status::NotFound("no intact checkpoint in " + root_);
}

Status CheckpointStore::Commit(const checkpoint::Manifest& manifest) const {
  const std::string dir = DirFor(manifest.id());
  return WriteFileDurably(dir + "/" + kManifestName, manifest.SerializeAsString());
}

Status CheckpointStore::Remove(uint64_t id) const {
  std::error_code ec;
  fs::remove_all(DirFor(id), ec);
  if (ec) return Status::IoError("cannot remove " + DirFor(id) + ": " + ec.message());
  return Status::OK();
}

Status CheckpointStore::Prune(uint64_t newest, int keep) const {
  int kept = 0;
  std::set<uint64_t> chains;  // chain_start of the kept ones
  bool other_chain_kept = false;
  for (uint64_t id : ListIds()) {
    if (id > newest) continue;  // not ours to judge (cannot happen in one job)
    checkpoint::Manifest m;
    auto bytes = ReadWholeFile(DirFor(id) + "/" + kManifestName);
    const bool committed = bytes.ok() && m.ParseFromString(*bytes);
    const uint64_t chain = m.has_chain_start() ? m.chain_start() : id;
    if (committed && kept < keep) {
      ++kept;
      chains.insert(chain);
      continue;
    }
    if (committed && !other_chain_kept && chains.size() == 1 && chains.count(chain) == 0) {
      other_chain_kept = true;  // the fallback of another chain
      continue;
    }
    MTPS_RETURN_IF_ERROR(Remove(id));
  }
  return SyncDirectory(root_);
}

}  // namespace mtps
