// SparseTable: open-addressing index plus chunked row arena (see sparse_table.h
// for the layout).
#include "ps/sparse_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include <glog/logging.h>

#include "common/hash.h"
#include "ps/optimizer.h"

namespace mtps {
namespace {

constexpr size_t kMinCapacity = 16;
// Load factor at which the index doubles: kGrowNum / kGrowDen.
constexpr size_t kGrowNum = 7;
constexpr size_t kGrowDen = 10;
// Target bytes of one arena chunk; rows per chunk is the largest power of two
// that fits (at least one row).
constexpr size_t kChunkBytes = size_t{1} << 20;
constexpr std::align_val_t kChunkAlign{64};
// How many keys ahead Pull and Push prefetch the home bucket.
constexpr size_t kPrefetchDistance = 8;

// Most buckets an index of `capacity` buckets may use before it doubles.
size_t GrowAt(size_t capacity) { return capacity * kGrowNum / kGrowDen; }

}  // namespace

Status ValidateSparseTableOptions(const SparseTableOptions& options) {
  if (options.dim <= 0) {
    return Status::InvalidArgument("sparse table: dim must be positive, got " +
                                   std::to_string(options.dim));
  }
  if (!(options.init_scale >= 0.0f) || !std::isfinite(options.init_scale)) {
    return Status::InvalidArgument("sparse table: init_scale must be finite and >= 0, got " +
                                   std::to_string(options.init_scale));
  }
  const float lr = options.adagrad.learning_rate();
  if (!(lr >= 0.0f) || !std::isfinite(lr)) {
    return Status::InvalidArgument(
        "sparse table: adagrad.learning_rate must be finite and >= 0, got " + std::to_string(lr));
  }
  const float acc = options.adagrad.initial_accumulator();
  if (!(acc > 0.0f) || !std::isfinite(acc)) {
    return Status::InvalidArgument(
        "sparse table: adagrad.initial_accumulator must be finite and > 0, got " +
        std::to_string(acc));
  }
  return Status::OK();
}

float InitialValue(uint64_t seed, uint64_t key, int j, float scale) {
  // One independent 64-bit stream per (seed, key); element j is its j-th
  // SplitMix64 output. The top 24 bits give a float in [0, 1) exactly.
  const uint64_t stream = Mix64(key ^ Mix64(seed));
  const uint64_t bits = Mix64(stream + static_cast<uint64_t>(j) * 0x9e3779b97f4a7c15ULL);
  const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return (2.0f * unit - 1.0f) * scale;                                       // [-scale, scale)
}

void SparseTable::AlignedFloatDeleter::operator()(float* p) const {
  ::operator delete[](p, kChunkAlign);
}

SparseTable::SparseTable(const SparseTableOptions& options)
    : dim_(options.dim),
      row_floats_(2 * static_cast<size_t>(options.dim)),
      init_scale_(options.init_scale),
      seed_(options.seed),
      learning_rate_(options.adagrad.learning_rate()),
      initial_accumulator_(options.adagrad.initial_accumulator()) {
  const Status valid = ValidateSparseTableOptions(options);
  CHECK(valid.ok()) << valid;
  const size_t row_bytes = row_floats_ * sizeof(float);
  chunk_shift_ = 0;
  while ((row_bytes << (chunk_shift_ + 1)) <= kChunkBytes) ++chunk_shift_;
  chunk_mask_ = (uint64_t{1} << chunk_shift_) - 1;
  Rehash(kMinCapacity);
}

void SparseTable::Prefetch(uint64_t key) const {
  __builtin_prefetch(&buckets_[Mix64(key) & mask_]);
}

uint64_t SparseTable::Find(uint64_t key) const {
  if (key == kEmptyKey) return has_empty_key_ ? empty_key_row_ : kNoRow;
  for (size_t i = Mix64(key) & mask_;; i = (i + 1) & mask_) {
    const Bucket& b = buckets_[i];
    if (b.key == key) return b.row;
    if (b.key == kEmptyKey) return kNoRow;
  }
}

uint64_t SparseTable::FindOrInsert(uint64_t key) {
  if (key == kEmptyKey) {
    if (!has_empty_key_) {
      empty_key_row_ = NewRow(key);
      has_empty_key_ = true;
    }
    return empty_key_row_;
  }
  size_t i = Mix64(key) & mask_;
  for (;; i = (i + 1) & mask_) {
    const Bucket& b = buckets_[i];
    if (b.key == key) return b.row;
    if (b.key == kEmptyKey) break;
  }
  if (occupied_ + 1 > grow_at_) {
    Rehash(capacity_ * 2);
    i = Mix64(key) & mask_;
    while (buckets_[i].key != kEmptyKey) i = (i + 1) & mask_;
  }
  const uint64_t row = NewRow(key);
  buckets_[i] = Bucket{key, row};
  ++occupied_;
  return row;
}

uint64_t SparseTable::NewRow(uint64_t key) {
  const uint64_t row = num_rows_;
  if ((row >> chunk_shift_) == chunks_.size()) {
    const size_t floats = (size_t{1} << chunk_shift_) * row_floats_;
    chunks_.emplace_back(
        static_cast<float*>(::operator new[](floats * sizeof(float), kChunkAlign)));
  }
  ++num_rows_;
  float* p = RowPtr(row);
  for (int j = 0; j < dim_; ++j) p[j] = InitialValue(seed_, key, j, init_scale_);
  std::fill(p + dim_, p + row_floats_, initial_accumulator_);
  return row;
}

void SparseTable::Rehash(size_t new_capacity) {
  DCHECK_EQ(new_capacity & (new_capacity - 1), 0u);
  void* mem = std::calloc(new_capacity, sizeof(Bucket));
  if (mem == nullptr) throw std::bad_alloc();
  std::unique_ptr<Bucket[], FreeDeleter> fresh(static_cast<Bucket*>(mem));
  const size_t new_mask = new_capacity - 1;
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey) continue;
    size_t j = Mix64(b.key) & new_mask;
    while (fresh[j].key != kEmptyKey) j = (j + 1) & new_mask;
    fresh[j] = b;
  }
  buckets_ = std::move(fresh);
  capacity_ = new_capacity;
  mask_ = new_mask;
  grow_at_ = GrowAt(new_capacity);
}

void SparseTable::Reserve(size_t rows) {
  size_t needed = capacity_;
  while (GrowAt(needed) < rows) needed <<= 1;
  if (needed > capacity_) Rehash(needed);
}

void SparseTable::Pull(const uint64_t* keys, size_t n, bool create_missing, float* out) {
  const size_t dim = static_cast<size_t>(dim_);
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetchDistance < n) Prefetch(keys[i + kPrefetchDistance]);
    float* dst = out + i * dim;
    const uint64_t key = keys[i];
    const uint64_t row = create_missing ? FindOrInsert(key) : Find(key);
    if (row != kNoRow) {
      std::memcpy(dst, RowPtr(row), dim * sizeof(float));
    } else {
      for (int j = 0; j < dim_; ++j) dst[j] = InitialValue(seed_, key, j, init_scale_);
    }
  }
}

void SparseTable::Push(const uint64_t* keys, size_t n, const float* grads) {
  const size_t dim = static_cast<size_t>(dim_);
  for (size_t i = 0; i < n; ++i) {
    if (i + kPrefetchDistance < n) Prefetch(keys[i + kPrefetchDistance]);
    float* w = RowPtr(FindOrInsert(keys[i]));
    AdagradUpdate(w, w + dim, grads + i * dim, dim, learning_rate_);
  }
}

size_t SparseTable::memory_bytes() const {
  const size_t chunk_bytes = (size_t{1} << chunk_shift_) * row_floats_ * sizeof(float);
  return capacity_ * sizeof(Bucket) + chunks_.size() * chunk_bytes +
         chunks_.capacity() * sizeof(chunks_[0]);
}

}  // namespace mtps
