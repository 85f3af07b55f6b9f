// SparseTable: open-addressing index plus chunked row arena, per-row
// optimizers, admission sketch, eviction by age and by row cap (see
// sparse_table.h for the layout and the costs).
#include "ps/table/sparse_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include <glog/logging.h>

#include "common/base/hash.h"
#include "common/config/config_check.h"
#include "ps/table/optimizer.h"
#include "ps/table/table_config.h"

namespace mtps {
namespace {

constexpr size_t kMinCapacity = 16;
// Load factor at which the index doubles: kGrowNum / kGrowDen; it halves
// below 1 / kShrinkDen.
constexpr size_t kGrowNum = 7;
constexpr size_t kGrowDen = 10;
constexpr size_t kShrinkDen = 8;
// An arena chunk holds the smallest power of two of rows that fills at least
// one huge page; it is allocated huge-page aligned.
constexpr size_t kHugePage = size_t{2} << 20;
// How many keys ahead Pull and Push prefetch the home bucket. (Prefetching
// the row too, from the home bucket 4 keys ahead, measured no faster.)
constexpr size_t kPrefetchDistance = 8;
// Rows are 32-bit in the index and kNoRow is reserved (ps/table/table_config.h).
constexpr uint64_t kMaxRows = static_cast<uint64_t>(kMaxTableRows);

// Most buckets an index of `capacity` buckets may use before it doubles.
size_t GrowAt(size_t capacity) { return capacity * kGrowNum / kGrowDen; }

SparseTable::OptimizerKind KindOf(const config::SparseOptimizer& o) {
  switch (o.kind_case()) {
    case config::SparseOptimizer::kSgd:
      return SparseTable::OptimizerKind::kSgd;
    case config::SparseOptimizer::kAdam:
      return SparseTable::OptimizerKind::kAdam;
    case config::SparseOptimizer::kFtrl:
      return SparseTable::OptimizerKind::kFtrl;
    case config::SparseOptimizer::kAdagrad:
    case config::SparseOptimizer::KIND_NOT_SET:
      break;
  }
  return SparseTable::OptimizerKind::kAdagrad;
}

size_t RowFloatsOf(SparseTable::OptimizerKind kind, size_t dim) {
  switch (kind) {
    case SparseTable::OptimizerKind::kSgd:
      return dim;
    case SparseTable::OptimizerKind::kAdagrad:
      return 2 * dim;
    case SparseTable::OptimizerKind::kAdam:
      return 3 * dim + 1;
    case SparseTable::OptimizerKind::kFtrl:
      return 3 * dim;
  }
  return 2 * dim;
}

uint32_t LoadU32(const float* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
void StoreU32(float* p, uint32_t v) { std::memcpy(p, &v, sizeof(v)); }

}  // namespace

Status ValidateSparseTableOptions(const SparseTableOptions& options) {
  ConfigProblems problems;
  problems.Positive("dim", options.dim);
  CheckInitScale(options.init_scale, "init_scale", &problems);
  CheckSparseOptimizer(options.optimizer, "", &problems);
  CheckSparseTableLimits(options.admission_min_count, options.evict_after_steps, options.max_rows,
                         "", &problems);
  if (options.admission_sketch_width_log2 < 4 || options.admission_sketch_width_log2 > 30) {
    problems.Add(
        "admission_sketch_width_log2",
        "must be in [4, 30] (got " + std::to_string(options.admission_sketch_width_log2) + ")");
  }
  return problems.ToStatus("sparse table");
}

float InitialValue(uint64_t seed, uint64_t key, int j, float scale) {
  // One independent 64-bit stream per (seed, key); element j is its j-th
  // SplitMix64 output. The top 24 bits give a float in [0, 1) exactly.
  const uint64_t stream = Mix64(key ^ Mix64(seed));
  const uint64_t bits = Mix64(stream + static_cast<uint64_t>(j) * 0x9e3779b97f4a7c15ULL);
  const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  return (2.0f * unit - 1.0f) * scale;                                       // [-scale, scale)
}

// ---------------------------------------------------------------------------
// SparseTable

SparseTable::SparseTable(const SparseTableOptions& options)
    : kind_(KindOf(options.optimizer)),
      dim_(options.dim),
      row_floats_(RowFloatsOf(kind_, static_cast<size_t>(std::max(options.dim, 1)))),
      init_scale_(options.init_scale),
      seed_(options.seed),
      learning_rate_(0.0f),
      initial_accumulator_(options.optimizer.adagrad().initial_accumulator()),
      beta1_(options.optimizer.adam().beta1()),
      beta2_(options.optimizer.adam().beta2()),
      epsilon_(options.optimizer.adam().epsilon()),
      ftrl_alpha_(options.optimizer.ftrl().alpha()),
      ftrl_beta_(options.optimizer.ftrl().beta()),
      ftrl_l1_(options.optimizer.ftrl().l1()),
      ftrl_l2_(options.optimizer.ftrl().l2()),
      admission_min_count_(static_cast<uint32_t>(std::max(options.admission_min_count, 0))),
      evict_after_steps_(static_cast<uint32_t>(std::max<int64_t>(options.evict_after_steps, 0))),
      max_rows_(static_cast<size_t>(std::max<int64_t>(options.max_rows, 0))),
      lru_rng_(Mix64(options.seed ^ 0x1badb002ULL) | 1) {
  const Status valid = ValidateSparseTableOptions(options);
  CHECK(valid.ok()) << valid;
  switch (kind_) {
    case OptimizerKind::kSgd:
      learning_rate_ = options.optimizer.sgd().learning_rate();
      break;
    case OptimizerKind::kAdagrad:
      learning_rate_ = options.optimizer.adagrad().learning_rate();
      break;
    case OptimizerKind::kAdam:
      learning_rate_ = options.optimizer.adam().learning_rate();
      break;
    case OptimizerKind::kFtrl:
      break;
  }
  const size_t row_bytes = row_floats_ * sizeof(float);
  chunk_shift_ = 0;
  while ((row_bytes << chunk_shift_) < kHugePage) ++chunk_shift_;
  chunk_mask_ = (uint32_t{1} << chunk_shift_) - 1;
  chunk_bytes_ = row_bytes << chunk_shift_;
  if (admission_min_count_ > 1) {
    sketch_ = std::make_unique<CountMinSketch>(options.admission_sketch_width_log2, seed_);
  }
  Rehash(kMinCapacity);
}

void SparseTable::Prefetch(uint64_t key) const {
  __builtin_prefetch(&buckets_[Mix64(key) & mask_]);
}

const SparseTable::Bucket* SparseTable::Find(uint64_t key) const {
  if (key == kEmptyKey) return has_empty_key_ ? &empty_key_bucket_ : nullptr;
  for (size_t i = Mix64(key) & mask_;; i = (i + 1) & mask_) {
    const Bucket& b = buckets_[i];
    if (b.key == key) return &b;
    if (b.key == kEmptyKey) return nullptr;
  }
}

SparseTable::Bucket* SparseTable::Find(uint64_t key) {
  return const_cast<Bucket*>(static_cast<const SparseTable*>(this)->Find(key));
}

SparseTable::Bucket* SparseTable::Insert(uint64_t key) {
  if (max_rows_ > 0 && num_rows_ >= max_rows_) EvictOneLru();
  const uint32_t row = NewRow(key);
  ++num_rows_;
  ++counters_.admitted;
  const uint32_t now = static_cast<uint32_t>(step_);
  if (key == kEmptyKey) {
    has_empty_key_ = true;
    empty_key_bucket_ = Bucket{kEmptyKey, row, now};
    return &empty_key_bucket_;
  }
  if (occupied_ + 1 > grow_at_) Rehash(capacity_ * 2);
  size_t i = Mix64(key) & mask_;
  while (buckets_[i].key != kEmptyKey) i = (i + 1) & mask_;
  buckets_[i] = Bucket{key, row, now};
  ++occupied_;
  return &buckets_[i];
}

uint32_t SparseTable::NewRow(uint64_t key) {
  uint32_t row;
  if (!free_rows_.empty()) {
    row = free_rows_.back();
    free_rows_.pop_back();
  } else {
    if (arena_rows_ >= kMaxRows) {
      throw std::length_error("sparse table: more than 2^32 - 2 rows");
    }
    row = arena_rows_++;
    if ((row >> chunk_shift_) == chunks_.size()) {
      void* mem = nullptr;
      if (posix_memalign(&mem, kHugePage, chunk_bytes_) != 0) throw std::bad_alloc();
      // Advisory: without transparent huge pages it fails and changes nothing.
      madvise(mem, chunk_bytes_ & ~(kHugePage - 1), MADV_HUGEPAGE);
      chunks_.emplace_back(static_cast<float*>(mem));
    }
  }
  float* p = RowPtr(row);
  const size_t dim = static_cast<size_t>(dim_);
  for (size_t j = 0; j < dim; ++j)
    p[j] = InitialValue(seed_, key, static_cast<int>(j), init_scale_);
  switch (kind_) {
    case OptimizerKind::kSgd:
      break;
    case OptimizerKind::kAdagrad:
      std::fill(p + dim, p + 2 * dim, initial_accumulator_);
      break;
    case OptimizerKind::kAdam:
      std::fill(p + dim, p + 3 * dim, 0.0f);
      StoreU32(p + 3 * dim, 0);
      break;
    case OptimizerKind::kFtrl: {
      const FtrlParams params{ftrl_alpha_, ftrl_beta_, ftrl_l1_, ftrl_l2_};
      for (size_t j = 0; j < dim; ++j) p[dim + j] = FtrlInitialZ(p[j], params);
      std::fill(p + 2 * dim, p + 3 * dim, 0.0f);
      break;
    }
  }
  return row;
}

void SparseTable::EraseAt(size_t pos) {
  free_rows_.push_back(buckets_[pos].row);
  --num_rows_;
  // Backward shift: walk the probe run after the hole; an entry may fill the
  // hole when the hole lies on its path from its home bucket, i.e. its home
  // is not cyclically within (hole, j].
  size_t hole = pos;
  for (size_t j = (pos + 1) & mask_; buckets_[j].key != kEmptyKey; j = (j + 1) & mask_) {
    const size_t home = Mix64(buckets_[j].key) & mask_;
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      buckets_[hole] = buckets_[j];
      hole = j;
    }
  }
  buckets_[hole] = Bucket{kEmptyKey, 0, 0};
  --occupied_;
}

void SparseTable::EraseEmptyKey() {
  free_rows_.push_back(empty_key_bucket_.row);
  --num_rows_;
  has_empty_key_ = false;
  empty_key_bucket_ = Bucket{kEmptyKey, kNoRow, 0};
}

bool SparseTable::Erase(uint64_t key) {
  if (key == kEmptyKey) {
    if (!has_empty_key_) return false;
    EraseEmptyKey();
    return true;
  }
  for (size_t i = Mix64(key) & mask_;; i = (i + 1) & mask_) {
    if (buckets_[i].key == key) {
      EraseAt(i);
      MaybeShrink();
      return true;
    }
    if (buckets_[i].key == kEmptyKey) return false;
  }
}

void SparseTable::EvictOneLru() {
  // xorshift64: cheap, deterministic per table.
  lru_rng_ ^= lru_rng_ << 13;
  lru_rng_ ^= lru_rng_ >> 7;
  lru_rng_ ^= lru_rng_ << 17;
  size_t best = kNoPos;
  uint32_t best_age = 0;
  bool best_is_empty_key = false;
  if (has_empty_key_) {
    best_age = Age(empty_key_bucket_.step);
    best_is_empty_key = true;
  }
  size_t i = static_cast<size_t>(lru_rng_) & mask_;
  int found = 0;
  for (size_t scanned = 0; scanned < capacity_ && found < kLruSample;
       ++scanned, i = (i + 1) & mask_) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey) continue;
    ++found;
    const uint32_t age = Age(b.step);
    if ((best == kNoPos && !best_is_empty_key) || age > best_age) {
      best = i;
      best_age = age;
      best_is_empty_key = false;
    }
  }
  ++counters_.evicted;
  if (best_is_empty_key) {
    EraseEmptyKey();
  } else {
    DCHECK_NE(best, kNoPos);
    EraseAt(best);
  }
}

void SparseTable::SweepExpired() {
  const uint32_t limit = evict_after_steps_;
  size_t advanced = 0;
  while (advanced < sweep_budget_) {
    const Bucket& b = buckets_[sweep_cursor_];
    if (b.key != kEmptyKey && Age(b.step) >= limit) {
      // The backward shift may move an unscanned entry into this bucket:
      // look at it again before moving on.
      EraseAt(sweep_cursor_);
      ++counters_.evicted;
      continue;
    }
    ++advanced;
    sweep_cursor_ = (sweep_cursor_ + 1) & mask_;
    if (sweep_cursor_ == 0 && has_empty_key_ && Age(empty_key_bucket_.step) >= limit) {
      EraseEmptyKey();
      ++counters_.evicted;
    }
  }
}

void SparseTable::MaybeShrink() {
  size_t target = capacity_;
  while (target > kMinCapacity && occupied_ < target / kShrinkDen) target >>= 1;
  if (target < capacity_) Rehash(target);
}

void SparseTable::Rehash(size_t new_capacity) {
  DCHECK_EQ(new_capacity & (new_capacity - 1), 0u);
  void* mem = std::calloc(new_capacity, sizeof(Bucket));
  if (mem == nullptr) throw std::bad_alloc();
  std::unique_ptr<Bucket[], FreeDeleter> fresh(static_cast<Bucket*>(mem));
  const size_t new_mask = new_capacity - 1;
  // With eviction by age the rebuild is also a full sweep: the positions
  // change, so the incremental sweep restarts at 0, and a row that expired
  // meanwhile must not wait for another period.
  const bool sweep = evict_after_steps_ > 0;
  size_t kept = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey) continue;
    if (sweep && Age(b.step) >= evict_after_steps_) {
      free_rows_.push_back(b.row);
      --num_rows_;
      ++counters_.evicted;
      continue;
    }
    size_t j = Mix64(b.key) & new_mask;
    while (fresh[j].key != kEmptyKey) j = (j + 1) & new_mask;
    fresh[j] = b;
    ++kept;
  }
  if (sweep && has_empty_key_ && Age(empty_key_bucket_.step) >= evict_after_steps_) {
    EraseEmptyKey();
    ++counters_.evicted;
  }
  buckets_ = std::move(fresh);
  capacity_ = new_capacity;
  mask_ = new_mask;
  occupied_ = kept;
  grow_at_ = GrowAt(new_capacity);
  // The sweep restarts and covers the new index once every T/4 steps.
  sweep_cursor_ = 0;
  if (evict_after_steps_ > 0) {
    const size_t period = std::max<size_t>(1, evict_after_steps_ / 4);
    sweep_budget_ = (capacity_ + period - 1) / period;
  }
}

void SparseTable::Reserve(size_t rows) {
  size_t needed = capacity_;
  while (GrowAt(needed) < rows) needed <<= 1;
  if (needed > capacity_) Rehash(needed);
}

void SparseTable::PullSelected(const uint64_t* keys, const uint32_t* sel, size_t m,
                               bool create_missing, float* out) {
  // A row copy of a size known at compile time is a few vector moves; of a
  // run-time size it is a call to memcpy per row.
  switch (dim_) {
    case 8:
      PullRows<8>(keys, sel, m, create_missing, out);
      break;
    case 16:
      PullRows<16>(keys, sel, m, create_missing, out);
      break;
    case 32:
      PullRows<32>(keys, sel, m, create_missing, out);
      break;
    case 64:
      PullRows<64>(keys, sel, m, create_missing, out);
      break;
    default:
      PullRows<0>(keys, sel, m, create_missing, out);
  }
}

template <size_t kDim>
void SparseTable::PullRows(const uint64_t* keys, const uint32_t* sel, size_t m, bool create_missing,
                           float* out) {
  const size_t dim = kDim != 0 ? kDim : static_cast<size_t>(dim_);
  const bool insert = create_missing && sketch_ == nullptr;
  for (size_t i = 0; i < m; ++i) {
    if (i + kPrefetchDistance < m) {
      Prefetch(keys[sel == nullptr ? i + kPrefetchDistance : sel[i + kPrefetchDistance]]);
    }
    const size_t pos = sel == nullptr ? i : sel[i];
    float* dst = out + pos * dim;
    const uint64_t key = keys[pos];
    const Bucket* b = Find(key);
    if (b == nullptr && insert) b = Insert(key);
    if (b != nullptr) {
      std::memcpy(dst, RowPtr(b->row), dim * sizeof(float));
    } else {
      for (size_t j = 0; j < dim; ++j) {
        dst[j] = InitialValue(seed_, key, static_cast<int>(j), init_scale_);
      }
    }
  }
}

template <SparseTable::OptimizerKind kKind>
void SparseTable::PushRows(const uint64_t* keys, const uint32_t* sel, size_t m,
                           const float* grads) {
  const size_t dim = static_cast<size_t>(dim_);
  const uint32_t now = static_cast<uint32_t>(step_);
  const FtrlParams ftrl{ftrl_alpha_, ftrl_beta_, ftrl_l1_, ftrl_l2_};
  const AdamStepper adam(learning_rate_, beta1_, beta2_);
  for (size_t i = 0; i < m; ++i) {
    if (i + kPrefetchDistance < m) {
      Prefetch(keys[sel == nullptr ? i + kPrefetchDistance : sel[i + kPrefetchDistance]]);
    }
    const size_t pos = sel == nullptr ? i : sel[i];
    const uint64_t key = keys[pos];
    Bucket* b = Find(key);
    if (b == nullptr) {
      if (sketch_ != nullptr && sketch_->Add(key) < admission_min_count_) {
        ++counters_.rejected;
        continue;
      }
      b = Insert(key);
    }
    b->step = now;
    float* w = RowPtr(b->row);
    const float* g = grads + pos * dim;
    if constexpr (kKind == OptimizerKind::kSgd) {
      SgdUpdate(w, g, dim, learning_rate_);
    } else if constexpr (kKind == OptimizerKind::kAdagrad) {
      AdagradUpdate(w, w + dim, g, dim, learning_rate_);
    } else if constexpr (kKind == OptimizerKind::kAdam) {
      // Per-row step count; it saturates where the bias correction is long 1.
      uint32_t t = LoadU32(w + 3 * dim);
      if (t != std::numeric_limits<uint32_t>::max()) ++t;
      StoreU32(w + 3 * dim, t);
      AdamUpdate(w, w + dim, w + 2 * dim, g, dim, beta1_, beta2_, epsilon_, adam.At(t));
    } else {
      FtrlUpdate(w, w + dim, w + 2 * dim, g, dim, ftrl);
    }
  }
}

void SparseTable::PushSelected(const uint64_t* keys, const uint32_t* sel, size_t m,
                               const float* grads) {
  ++step_;
  switch (kind_) {
    case OptimizerKind::kSgd:
      PushRows<OptimizerKind::kSgd>(keys, sel, m, grads);
      break;
    case OptimizerKind::kAdagrad:
      PushRows<OptimizerKind::kAdagrad>(keys, sel, m, grads);
      break;
    case OptimizerKind::kAdam:
      PushRows<OptimizerKind::kAdam>(keys, sel, m, grads);
      break;
    case OptimizerKind::kFtrl:
      PushRows<OptimizerKind::kFtrl>(keys, sel, m, grads);
      break;
  }
  if (evict_after_steps_ > 0) {
    SweepExpired();
    MaybeShrink();
  }
}

MemoryReport SparseTable::memory_report() const {
  MemoryReport r;
  r.rows = num_rows_;
  r.index_bytes = capacity_ * sizeof(Bucket);
  r.arena_bytes = chunks_.size() * chunk_bytes_;
  r.other_bytes = (sketch_ ? sketch_->memory_bytes() : 0) +
                  free_rows_.capacity() * sizeof(free_rows_[0]) +
                  chunks_.capacity() * sizeof(chunks_[0]);
  r.total_bytes = r.index_bytes + r.arena_bytes + r.other_bytes;
  r.raw_row_bytes = sizeof(uint64_t) + row_floats_ * sizeof(float);
  r.bytes_per_row = num_rows_ == 0 ? 0.0 : static_cast<double>(r.total_bytes) / num_rows_;
  return r;
}

size_t SparseTable::memory_bytes() const { return memory_report().total_bytes; }

}  // namespace mtps
