// CountMinSketch: double-hashed rows, conservative update. See
// ps/table/count_min_sketch.h.
#include "ps/table/count_min_sketch.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/base/hash.h"

namespace mtps {
namespace {

// Counters per change-tracking block, log2: 4 KiB of counters.
constexpr int kBlockLog2 = 11;

}  // namespace

CountMinSketch::CountMinSketch(int width_log2, uint64_t seed)
    : width_log2_(width_log2),
      width_(size_t{1} << width_log2),
      seed_(Mix64(seed ^ 0x5ca1ab1eULL)),
      counters_(kDepth * width_, 0),
      // kDepth * width_ = 2^(width_log2 + 2) counters.
      block_log2_(std::min(kBlockLog2, width_log2 + 2)),
      dirty_(((counters_.size() >> block_log2_) + 63) / 64, 0) {}

void CountMinSketch::Positions(uint64_t key, size_t pos[kDepth]) const {
  // Double hashing (Kirsch & Mitzenmacher): row d uses h1 + d * h2.
  const uint64_t h1 = Mix64(key ^ seed_);
  const uint64_t h2 = Mix64(h1) | 1;
  for (int d = 0; d < kDepth; ++d) {
    pos[d] =
        static_cast<size_t>(d) * width_ + ((h1 + static_cast<uint64_t>(d) * h2) & (width_ - 1));
  }
}

uint32_t CountMinSketch::Estimate(uint64_t key) const {
  size_t pos[kDepth];
  Positions(key, pos);
  uint32_t m = kMaxCount;
  for (int d = 0; d < kDepth; ++d) m = std::min<uint32_t>(m, counters_[pos[d]]);
  return m;
}

Status CountMinSketch::RestoreCounters(int width_log2, uint64_t hash_seed, const char* counters,
                                       size_t size) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "counters are stored little-endian");
  if (width_log2 != width_log2_) {
    return Status::InvalidArgument("admission sketch of width 2^" + std::to_string(width_log2) +
                                   ", this table's is 2^" + std::to_string(width_log2_));
  }
  if (hash_seed != seed_) {
    return Status::InvalidArgument("admission sketch hashed with seed " +
                                   std::to_string(hash_seed) + ", this table's with " +
                                   std::to_string(seed_) + " (another table seed)");
  }
  if (size != counters_.size() * sizeof(counters_[0])) {
    return Status::InvalidArgument("admission sketch of " + std::to_string(size) +
                                   " bytes of counters, want " +
                                   std::to_string(counters_.size() * sizeof(counters_[0])));
  }
  std::memcpy(counters_.data(), counters, size);
  MarkAllDirty();
  return Status::OK();
}

void CountMinSketch::Clear() {
  std::fill(counters_.begin(), counters_.end(), uint16_t{0});
  MarkAllDirty();
}

void CountMinSketch::MarkAllDirty() {
  const size_t blocks = num_blocks();
  std::fill(dirty_.begin(), dirty_.end(), ~uint64_t{0});
  if (blocks % 64 != 0) dirty_.back() = (uint64_t{1} << (blocks % 64)) - 1;
}

void CountMinSketch::MarkClean() { std::fill(dirty_.begin(), dirty_.end(), uint64_t{0}); }

std::vector<uint32_t> CountMinSketch::DirtyBlocks() const {
  std::vector<uint32_t> blocks;
  for (size_t w = 0; w < dirty_.size(); ++w) {
    for (uint64_t bits = dirty_[w]; bits != 0; bits &= bits - 1) {
      blocks.push_back(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
    }
  }
  return blocks;
}

void CountMinSketch::SetBlock(uint32_t block, const char* counters) {
  const size_t n = size_t{1} << block_log2_;
  std::memcpy(counters_.data() + static_cast<size_t>(block) * n, counters, n * sizeof(uint16_t));
  dirty_[block / 64] |= uint64_t{1} << (block % 64);
}

uint32_t CountMinSketch::Add(uint64_t key) {
  size_t pos[kDepth];
  Positions(key, pos);
  uint32_t m = kMaxCount;
  for (int d = 0; d < kDepth; ++d) m = std::min<uint32_t>(m, counters_[pos[d]]);
  if (m == kMaxCount) return m;
  // Conservative update: only the counters at the minimum carry this key's
  // count alone; raising the others would only add collision error.
  for (int d = 0; d < kDepth; ++d) {
    if (counters_[pos[d]] == m) {
      counters_[pos[d]] = static_cast<uint16_t>(m + 1);
      const size_t block = pos[d] >> block_log2_;
      dirty_[block / 64] |= uint64_t{1} << (block % 64);
    }
  }
  return m + 1;
}

}  // namespace mtps
