// What the checkpoint fuzz targets and the seed writer share: the table
// options a fuzz input picks, a snapshot's bytes, and the fix-up that gives
// mutated bytes a valid trailing checksum, so the fuzzer gets past the
// checksum to the parsing behind it.
#ifndef MTPS_TESTS_FUZZ_CHECKPOINT_FUZZ_H_
#define MTPS_TESTS_FUZZ_CHECKPOINT_FUZZ_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "tests/fuzz/fuzz_support.h"

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "ps/table/sparse_table.h"

namespace mtps {
namespace fuzz {

// Embedding dim of every fuzzed table (the seeds are written with it).
inline constexpr int kTableDim = 4;

// Bits 0-1 of `pick`: the optimizer (Adagrad, Adam, FTRL, SGD); bit 2: the
// admission sketch on (16 counters wide); bit 3: a row cap of 8; bit 4:
// eviction after 3 steps.
inline SparseTableOptions TableOptionsOf(uint8_t pick) {
  SparseTableOptions options;
  options.dim = kTableDim;
  switch (pick & 3) {
    case 0:
      options.optimizer.mutable_adagrad();
      break;
    case 1:
      options.optimizer.mutable_adam();
      break;
    case 2:
      options.optimizer.mutable_ftrl();
      break;
    default:
      options.optimizer.mutable_sgd();
      break;
  }
  if (pick & 4) {
    options.admission_min_count = 2;
    options.admission_sketch_width_log2 = 4;
  }
  if (pick & 8) options.max_rows = 8;
  if (pick & 16) options.evict_after_steps = 3;
  const Status valid = ValidateSparseTableOptions(options);
  if (!valid.ok()) Fail("fuzz table options: " + valid.ToString());
  return options;
}

// WriteSparseSnapshot's bytes.
inline std::string SnapshotBytes(const SparseTableSnapshot& snapshot) {
  std::string out;
  const Status s = WriteSparseSnapshot(snapshot, [&out](const char* data, size_t size) {
    out.append(data, size);
    return Status::OK();
  });
  if (!s.ok()) Fail("WriteSparseSnapshot into memory: " + s.ToString());
  return out;
}

// Rewrites the last 8 bytes as the SnapshotChecksum of everything before
// them (MTPSROWS, MTPSDELT and MTPSDENS all end so).
inline void FixChecksum(std::string* bytes) {
  if (bytes->size() < sizeof(uint64_t)) return;
  const size_t body = bytes->size() - sizeof(uint64_t);
  const uint64_t sum = SnapshotChecksum::Of(bytes->data(), body);
  std::memcpy(&(*bytes)[body], &sum, sizeof(sum));
}

}  // namespace fuzz
}  // namespace mtps

#endif  // MTPS_TESTS_FUZZ_CHECKPOINT_FUZZ_H_
