// BareLayout: SparseTable's layout on bare arrays (see bare_layout.h).
#include "tests/bench/bare_layout.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <glog/logging.h>

#include "common/base/hash.h"
#include "common/optim/optimizer.h"
#include "ps/table/prefetch.h"

namespace mtps {
namespace bench {
namespace {

using table_prefetch::kBlock;
using table_prefetch::kBucketAhead;
using table_prefetch::kCacheLine;
using table_prefetch::kRowAhead;
using table_prefetch::PrefetchSpan;
constexpr size_t kHugePage = size_t{2} << 20;

// Zeroed memory of at least `bytes`, 2 MiB aligned and advised MADV_HUGEPAGE
// before it is touched, as the table's index and arena are.
void* MapZeroed(size_t bytes) {
  void* mem = nullptr;
  if (posix_memalign(&mem, kHugePage, bytes) != 0) throw std::bad_alloc();
  madvise(mem, bytes & ~(kHugePage - 1), MADV_HUGEPAGE);  // advisory
  std::memset(mem, 0, bytes);
  return mem;
}

// The table's Adagrad step (weights, then accumulators).
inline void Adagrad(float* row, const float* g, size_t dim, float lr) {
  AdagradUpdate(row, row + dim, g, dim, lr);
}

// A row copy of a size known at compile time, as the table's PullRows<kDim>
// makes it for dims 8-64 (a run-time size is a call to memcpy per row).
inline void CopyRow(float* dst, const float* src, size_t dim) {
  switch (dim) {
    case 8:
      std::memcpy(dst, src, 8 * sizeof(float));
      return;
    case 16:
      std::memcpy(dst, src, 16 * sizeof(float));
      return;
    case 32:
      std::memcpy(dst, src, 32 * sizeof(float));
      return;
    case 64:
      std::memcpy(dst, src, 64 * sizeof(float));
      return;
    default:
      std::memcpy(dst, src, dim * sizeof(float));
  }
}

}  // namespace

BareLayout::BareLayout(size_t capacity, size_t rows, int dim, float initial_accumulator,
                       bool with_inline)
    : capacity_(capacity),
      mask_(capacity - 1),
      rows_(rows),
      dim_(static_cast<size_t>(dim)),
      row_floats_(2 * static_cast<size_t>(dim)),
      index_bytes_(capacity * sizeof(Bucket)),
      arena_bytes_(rows * row_floats_ * sizeof(float)) {
  CHECK(capacity > rows && (capacity & (capacity - 1)) == 0) << capacity << " for " << rows;
  CHECK_GT(dim, 0);
  index_ = static_cast<Bucket*>(MapZeroed(index_bytes_));
  arena_ = static_cast<float*>(MapZeroed(arena_bytes_));
  for (size_t r = 0; r < rows_; ++r) std::fill_n(RowAt(r) + dim_, dim_, initial_accumulator);
  if (with_inline) {
    slots_ = static_cast<float*>(MapZeroed(capacity_ * (2 + row_floats_) * sizeof(float)));
    tags_ = static_cast<uint8_t*>(MapZeroed(capacity_));
    for (size_t i = 0; i < capacity_; ++i) {
      std::fill_n(SlotAt(i) + 2 + dim_, dim_, initial_accumulator);
    }
  }
}

BareLayout::~BareLayout() {
  std::free(index_);
  std::free(arena_);
  std::free(slots_);
  std::free(tags_);
}

bool BareLayout::Insert(uint64_t key) {
  CHECK_NE(key, 0u) << "0 marks an empty bucket";
  if (used_ == rows_) return false;
  size_t i = Mix64(key) & mask_;
  while (index_[i].key != 0) i = (i + 1) & mask_;
  index_[i] = Bucket{key, used_++};
  if (slots_ != nullptr) {
    size_t j = Mix64(key) & mask_;
    while (SlotKey(SlotAt(j)) != 0) j = (j + 1) & mask_;
    std::memcpy(SlotAt(j), &key, sizeof(key));
    tags_[j] = static_cast<uint8_t>(0x80 | (Mix64(key) >> 57));
  }
  return true;
}

float* BareLayout::FindSlot(uint64_t key) const {
  for (size_t i = Mix64(key) & mask_;; i = (i + 1) & mask_) {
    float* slot = SlotAt(i);
    const uint64_t k = SlotKey(slot);
    if (k == key) return slot + 2;
    if (k == 0) return nullptr;
  }
}

size_t BareLayout::PullInline(const uint64_t* keys, size_t n, float* out) const {
  CHECK(slots_ != nullptr);
  const size_t bytes = dim_ * sizeof(float);
  size_t found = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kBucketAhead < n) {  // the home slot's key and weights
      PrefetchSpan<false>(SlotAt(Mix64(keys[i + kBucketAhead]) & mask_), 8 + bytes);
    }
    const float* row = FindSlot(keys[i]);
    if (row == nullptr) continue;
    CopyRow(out + i * dim_, row, dim_);
    ++found;
  }
  return found;
}

size_t BareLayout::PushInline(const uint64_t* keys, size_t n, const float* grads, float lr) {
  CHECK(slots_ != nullptr);
  const size_t bytes = (2 + row_floats_) * sizeof(float);
  size_t found = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kBucketAhead < n)
      PrefetchSpan<true>(SlotAt(Mix64(keys[i + kBucketAhead]) & mask_), bytes);
    float* row = FindSlot(keys[i]);
    if (row == nullptr) continue;
    Adagrad(row, grads + i * dim_, dim_, lr);
    ++found;
  }
  return found;
}

const float* BareLayout::FindRow(uint64_t key) const {
  for (size_t i = Mix64(key) & mask_;; i = (i + 1) & mask_) {
    if (index_[i].key == key) return RowAt(index_[i].row);
    if (index_[i].key == 0) return nullptr;
  }
}

template <bool kPush>
size_t BareLayout::TwoPass(const uint64_t* keys, size_t n, float* out, const float* grads,
                           float lr) const {
  // A pull reads the weights (and, if small, prefetches them in the first
  // pass, as the table does); a push updates the whole row.
  const size_t bytes = (kPush ? row_floats_ : dim_) * sizeof(float);
  const bool early_rows = !kPush && bytes <= 2 * kCacheLine;
  float* rows[kBlock];
  size_t found = 0;
  for (size_t start = 0; start < n; start += kBlock) {
    const size_t end = std::min(n, start + kBlock);
    for (size_t i = start; i < end; ++i) {
      if (i + kBucketAhead < n) __builtin_prefetch(&index_[Mix64(keys[i + kBucketAhead]) & mask_]);
      rows[i - start] = const_cast<float*>(FindRow(keys[i]));
      if (early_rows && rows[i - start] != nullptr) PrefetchSpan<false>(rows[i - start], bytes);
    }
    for (size_t i = start; i < std::min(end, start + kRowAhead); ++i) {
      if (rows[i - start] != nullptr) PrefetchSpan<kPush>(rows[i - start], bytes);
    }
    for (size_t i = start; i < end; ++i) {
      if (i + kRowAhead < end && rows[i + kRowAhead - start] != nullptr) {
        PrefetchSpan<kPush>(rows[i + kRowAhead - start], bytes);
      }
      if (rows[i - start] == nullptr) continue;
      if (kPush) {
        Adagrad(rows[i - start], grads + i * dim_, dim_, lr);
      } else {
        CopyRow(out + i * dim_, rows[i - start], dim_);
      }
      ++found;
    }
  }
  return found;
}

size_t BareLayout::Pull(const uint64_t* keys, size_t n, float* out) const {
  return TwoPass<false>(keys, n, out, nullptr, 0);
}

size_t BareLayout::Push(const uint64_t* keys, size_t n, const float* grads, float lr) {
  return TwoPass<true>(keys, n, nullptr, grads, lr);
}

void BareLayout::PullDirect(const uint64_t* keys, size_t n, float* out) const {
  const size_t bytes = dim_ * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    if (i + kBucketAhead < n) {
      PrefetchSpan<false>(RowAt(Mix64(keys[i + kBucketAhead]) % rows_), bytes);
    }
    CopyRow(out + i * dim_, RowAt(Mix64(keys[i]) % rows_), dim_);
  }
}

void BareLayout::PushDirect(const uint64_t* keys, size_t n, const float* grads, float lr) {
  const size_t bytes = row_floats_ * sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    if (i + kBucketAhead < n) {
      PrefetchSpan<true>(RowAt(Mix64(keys[i + kBucketAhead]) % rows_), bytes);
    }
    Adagrad(RowAt(Mix64(keys[i]) % rows_), grads + i * dim_, dim_, lr);
  }
}

size_t BareLayout::TagCandidate(uint64_t h) const {
  const uint8_t want = static_cast<uint8_t>(0x80 | (h >> 57));
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    if (tags_[i] == want || tags_[i] == 0) return i;
  }
}

float* BareLayout::CheckSlot(size_t candidate, uint64_t key) const {
  float* slot = SlotAt(candidate);
  if (SlotKey(slot) == key) return slot + 2;
  return FindSlot(key);  // a tag shared with another key, or a miss
}

template <bool kPush>
size_t BareLayout::Tagged(const uint64_t* keys, size_t n, float* out, const float* grads,
                          float lr) const {
  CHECK(slots_ != nullptr);
  // Three stages: the tags of key i + 16 are prefetched; key i + 8's tags
  // are read and its slot prefetched; key i is checked and served.
  constexpr size_t kTagAhead = 16, kSlotAhead = 8;
  const size_t bytes = kPush ? (2 + row_floats_) * sizeof(float) : 8 + dim_ * sizeof(float);
  size_t candidate[kSlotAhead];
  auto start_slot = [&](size_t i) {
    const size_t c = TagCandidate(Mix64(keys[i]));
    candidate[i % kSlotAhead] = c;
    PrefetchSpan<kPush>(SlotAt(c), bytes);
  };
  for (size_t i = 0; i < std::min(n, kSlotAhead); ++i) start_slot(i);
  size_t found = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i + kTagAhead < n) __builtin_prefetch(&tags_[Mix64(keys[i + kTagAhead]) & mask_]);
    float* row = CheckSlot(candidate[i % kSlotAhead], keys[i]);
    if (i + kSlotAhead < n) start_slot(i + kSlotAhead);
    if (row == nullptr) continue;
    if (kPush) {
      Adagrad(row, grads + i * dim_, dim_, lr);
    } else {
      CopyRow(out + i * dim_, row, dim_);
    }
    ++found;
  }
  return found;
}

size_t BareLayout::PullTagged(const uint64_t* keys, size_t n, float* out) const {
  return Tagged<false>(keys, n, out, nullptr, 0);
}

size_t BareLayout::PushTagged(const uint64_t* keys, size_t n, const float* grads, float lr) {
  return Tagged<true>(keys, n, nullptr, grads, lr);
}

}  // namespace bench
}  // namespace mtps
