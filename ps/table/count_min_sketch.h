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

 private:
  void Positions(uint64_t key, size_t pos[kDepth]) const;

  int width_log2_;
  size_t width_;
  uint64_t seed_;
  std::vector<uint16_t> counters_;  // row d at [d * width_, (d + 1) * width_)
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_
