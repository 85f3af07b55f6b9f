// CheckpointStore: a job's checkpoints in one directory, and which of them
// can be trusted.
//
// Layout: ROOT/ckpt-00000007/ holds one checkpoint's files and, written
// last as its commit marker, MANIFEST (a serialized checkpoint.Manifest
// listing every other file with its size and crc32; proto/checkpoint.proto).
// A directory without a MANIFEST is a checkpoint whose writing was cut
// short; one whose MANIFEST does not parse, or whose files are missing,
// truncated or fail their checksum, is corrupt. Both are skipped, with a
// log line naming the file and the reason, in favour of an older good one.
// Called by the scheduler's thread only; not thread-safe.
#ifndef MTPS_PS_SCHEDULER_CHECKPOINT_STORE_H_
#define MTPS_PS_SCHEDULER_CHECKPOINT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/checkpoint.pb.h"

namespace mtps {

class CheckpointStore {
 public:
  static constexpr const char* kManifestName = "MANIFEST";

  explicit CheckpointStore(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  // Creates the root directory (and its parents) if missing.
  Status Init() const;
  // ROOT/ckpt-<id, 8 digits>.
  std::string DirFor(uint64_t id) const;
  // Ids of every ckpt-N directory under the root, newest (highest) first.
  std::vector<uint64_t> ListIds() const;

  // The manifest of checkpoint `id` when it and every file it lists are
  // intact (each file read whole and checksummed); Corruption or NotFound
  // naming the file and why otherwise.
  StatusOr<checkpoint::Manifest> Verify(uint64_t id) const;
  // The newest intact checkpoint (NotFound when there is none); every
  // newer one skipped is logged and its reason appended to `skipped`.
  StatusOr<checkpoint::Manifest> LatestGood(std::vector<std::string>* skipped) const;

  // Writes the manifest of checkpoint manifest.id() durably: from then on
  // the checkpoint exists.
  Status Commit(const checkpoint::Manifest& manifest) const;
  // Removes a checkpoint directory and everything in it.
  Status Remove(uint64_t id) const;
  // Keeps the newest `keep` committed checkpoints (newer than or equal to
  // `newest`, the one just committed) and removes every other directory
  // older than `newest`: older committed ones and older cut-short ones.
  // When the kept ones all belong to one chain of incremental checkpoints
  // (Manifest.chain_start), the newest committed one of an older chain is
  // kept too: one damaged full shard file (shared, hard-linked, by the whole
  // chain) must not leave nothing to resume from.
  Status Prune(uint64_t newest, int keep) const;

 private:
  std::string root_;
};

}  // namespace mtps

#endif  // MTPS_PS_SCHEDULER_CHECKPOINT_STORE_H_
