// The block and prefetch distances of SparseTable's lookups, and the prefetch
// of a row's lines. Shared with ps_bench's bare layout
// (tests/bench/bare_layout.h), which measures the same accesses without the
// table, so the two stay alike.
#ifndef MTPS_PS_TABLE_PREFETCH_H_
#define MTPS_PS_TABLE_PREFETCH_H_

#include <cstddef>
#include <cstdint>

namespace mtps {
namespace table_prefetch {

// Pull and Push take a request's keys in blocks of kBlock, in two passes: the
// first finds (or inserts) each key's row, prefetching home buckets
// kBucketAhead keys ahead; the second copies or updates the rows, prefetching
// them kRowAhead keys ahead (a pull of small rows prefetches them in the
// first pass already). A key's two dependent cache misses (its bucket, then
// its row) are each in flight beside other keys' instead of one after the
// other.
constexpr size_t kBlock = 128;
constexpr size_t kBucketAhead = 16;
constexpr size_t kRowAhead = 8;
constexpr size_t kCacheLine = 64;

// Prefetches the `bytes` bytes at p (for writing when kWrite). Rows need not
// start on a line (an Adam row is 3 dim + 1 floats), so the lines are
// counted from the one holding p.
template <bool kWrite>
inline void PrefetchSpan(const float* p, size_t bytes) {
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + bytes;
  for (uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{kCacheLine - 1}; a < end;
       a += kCacheLine) {
    __builtin_prefetch(reinterpret_cast<const void*>(a), kWrite ? 1 : 0);
  }
}

}  // namespace table_prefetch
}  // namespace mtps

#endif  // MTPS_PS_TABLE_PREFETCH_H_
