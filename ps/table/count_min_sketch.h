// CountMinSketch: the approximate per-key push counter behind the sparse
// table's feature admission (server.admission_min_count; ps/table/sparse_table.h).
#ifndef MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_
#define MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_

#include <cstddef>
#include <cstdint>
#include <vector>

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

 private:
  void Positions(uint64_t key, size_t pos[kDepth]) const;

  size_t width_;
  uint64_t seed_;
  std::vector<uint16_t> counters_;  // row d at [d * width_, (d + 1) * width_)
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_COUNT_MIN_SKETCH_H_
