// CountMinSketch: the approximate per-key push counter behind the sparse
// table's feature admission (server.admission_min_count; ps/table/sparse_table.h).
#ifndef MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_
#define MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/base/status.h"

namespace mtps {

// A count-min sketch (Cormode & Muthukrishnan 2005) of kDepth rows of
// 2^width_log2 saturating 16-bit counters (kDepth * 2^width_log2 * 2 bytes:
// 8 MiB at width 2^20), with conservative update: Add raises only the counters
// equal to the current minimum. An estimate is never below the true count
// (until kMaxCount, where counters saturate) and exceeds it only through
// collisions. Owns its counters; not thread-safe.
class CountMinSketch {
 public:
  static constexpr int kDepth = 4;
  static constexpr uint32_t kMaxCount = 65535;

  CountMinSketch(int width_log2, uint64_t seed);

  // Counts one occurrence of key; returns the new estimate.
  uint32_t Add(uint64_t key);
  uint32_t Estimate(uint64_t key) const;
  size_t memory_bytes() const { return counters_.size() * sizeof(counters_[0]); }

  // For snapshots (ps/table/sparse_table.h): the width's log2, the hashing
  // seed derived from the constructor's, and the kDepth << width_log2()
  // counters (row d at [d << width_log2(), (d + 1) << width_log2())).
  int width_log2() const { return width_log2_; }
  uint64_t hash_seed() const { return seed_; }
  const std::vector<uint16_t>& counters() const { return counters_; }
  // Replaces the counters with those of a sketch of the given width and hash
  // seed: `counters` holds kDepth << width_log2 16-bit little-endian
  // counters, any alignment. InvalidArgument, the counters unchanged, when
  // the width or the seed differ from this sketch's (its counts would be
  // read at other positions) or size is not that many bytes.
  Status RestoreCounters(int width_log2, uint64_t hash_seed, const char* counters, size_t size);
  // Every count back to 0.
  void Clear();

  // Change tracking, for delta snapshots: the counters fall into blocks of
  // 2^block_log2() consecutive counters (2048, or all of them in a sketch of
  // fewer), and Add, Clear and RestoreCounters mark the blocks whose counters
  // they change (or may change) dirty until MarkClean. Costs one bit per block.
  int block_log2() const { return block_log2_; }
  size_t num_blocks() const { return counters_.size() >> block_log2_; }
  void MarkClean();
  // The dirty blocks' numbers, ascending.
  std::vector<uint32_t> DirtyBlocks() const;
  // Overwrites block `block` (< num_blocks()) with the 2^block_log2()
  // little-endian counters at `counters` (any alignment) and marks it dirty.
  void SetBlock(uint32_t block, const char* counters);
  size_t tracking_bytes() const { return dirty_.size() * sizeof(dirty_[0]); }

 private:
  void Positions(uint64_t key, size_t pos[kDepth]) const;
  void MarkAllDirty();

  int width_log2_;
  size_t width_;
  uint64_t seed_;
  std::vector<uint16_t> counters_;  // row d at [d * width_, (d + 1) * width_)
  int block_log2_;
  std::vector<uint64_t> dirty_;  // bit b: block b changed since MarkClean
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_
