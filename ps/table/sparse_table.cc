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
#include "common/optim/optimizer.h"
#include "ps/table/prefetch.h"
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
// The two passes per block and their prefetch distances: ps/table/prefetch.h.
using table_prefetch::kBlock;
using table_prefetch::kBucketAhead;
using table_prefetch::kCacheLine;
using table_prefetch::kRowAhead;
using table_prefetch::PrefetchSpan;

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

// The row-cap sampler's state of a new table.
uint64_t InitialLruState(uint64_t seed) { return Mix64(seed ^ 0x1badb002ULL) | 1; }

// ---------------------------------------------------------------------------
// MTPSROWS (see WriteSparseSnapshot in sparse_table.h).

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "snapshots are written and read as little-endian memory images");

constexpr char kRowsMagic[8] = {'M', 'T', 'P', 'S', 'R', 'O', 'W', 'S'};
constexpr uint32_t kRowsVersion = 1;
constexpr size_t kRowsHeaderBytes = 104;
constexpr size_t kChecksumBytes = sizeof(uint64_t);
// A row record: key, step stamp, then the row's floats.
constexpr size_t kRecordHeadBytes = sizeof(uint64_t) + sizeof(uint32_t);
// Largest chunk handed to a sink.
constexpr size_t kSinkChunkBytes = size_t{1} << 20;
// Rows of the index read ahead of the one being written, to prefetch theirs.
constexpr size_t kWritePrefetch = 32;
// A snapshot's index capacity is kept by Restore up to this multiple of what
// its rows need.
constexpr size_t kMaxCapacityHint = 8;
// Largest index capacity (log2) a snapshot may announce: 2^32 rows at the
// lowest load factor the table keeps.
constexpr uint32_t kMaxCapacityLog2 = 36;

// MTPSDELT (see WriteSparseSnapshot in sparse_table.h).
constexpr char kDeltaMagic[8] = {'M', 'T', 'P', 'S', 'D', 'E', 'L', 'T'};
constexpr uint32_t kDeltaVersion = 1;
constexpr size_t kDeltaHeaderBytes = 256;
// Header flags.
constexpr uint32_t kWholeLayout = 1;      // every row's bucket is listed
constexpr uint32_t kRemovedUnlisted = 2;  // (whole layout only) removed keys left out
// The bucket of key 0's record (it has none).
constexpr uint64_t kNoBucket = ~uint64_t{0};
// A changed row's record: key, bucket, stamp, then the row's floats.
constexpr size_t kChangedHeadBytes = 2 * sizeof(uint64_t) + sizeof(uint32_t);
// A moved row's record: key, bucket.
constexpr size_t kMovedBytes = 2 * sizeof(uint64_t);
// Offsets of a ChainState in the header (the base at 32, the result at 104).
constexpr size_t kBaseAt = 32;
constexpr size_t kResultAt = 104;

uint32_t KindCode(SparseTable::OptimizerKind kind) {
  switch (kind) {
    case SparseTable::OptimizerKind::kSgd:
      return 0;
    case SparseTable::OptimizerKind::kAdagrad:
      return 1;
    case SparseTable::OptimizerKind::kAdam:
      return 2;
    case SparseTable::OptimizerKind::kFtrl:
      return 3;
  }
  return 1;
}

const char* KindName(SparseTable::OptimizerKind kind) {
  switch (kind) {
    case SparseTable::OptimizerKind::kSgd:
      return "SGD";
    case SparseTable::OptimizerKind::kAdagrad:
      return "Adagrad";
    case SparseTable::OptimizerKind::kAdam:
      return "Adam";
    case SparseTable::OptimizerKind::kFtrl:
      return "FTRL";
  }
  return "?";
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
void Store(char* p, T v) {
  std::memcpy(p, &v, sizeof(v));
}

// The row format fields of MTPSROWS and MTPSDELT, checked against each other.
Status CheckRowFormat(uint32_t dim, uint32_t row_floats, uint32_t kind_code,
                      SparseTable::OptimizerKind* kind) {
  if (kind_code > 3) {
    return Status::Corruption("unknown optimizer kind " + std::to_string(kind_code));
  }
  const SparseTable::OptimizerKind kinds[4] = {
      SparseTable::OptimizerKind::kSgd, SparseTable::OptimizerKind::kAdagrad,
      SparseTable::OptimizerKind::kAdam, SparseTable::OptimizerKind::kFtrl};
  *kind = kinds[kind_code];
  if (dim == 0 || dim > static_cast<uint32_t>(std::numeric_limits<int>::max())) {
    return Status::Corruption("dim " + std::to_string(dim));
  }
  if (row_floats != RowFloatsOf(*kind, dim)) {
    return Status::Corruption("row_floats " + std::to_string(row_floats) + " does not match dim " +
                              std::to_string(dim) + " with " + KindName(*kind) + " (" +
                              std::to_string(RowFloatsOf(*kind, dim)) + ")");
  }
  return Status::OK();
}

// Buffers a stream into chunks of kSinkChunkBytes for a sink, checksumming
// what it hands on.
class ChunkWriter {
 public:
  explicit ChunkWriter(const std::function<Status(const char* data, size_t size)>& sink)
      : sink_(sink), buf_(new char[kSinkChunkBytes]) {}

  // Room for n contiguous bytes at the end of the buffer (then Commit(n)), or
  // nullptr when they do not fit.
  char* Room(size_t n) { return kSinkChunkBytes - used_ >= n ? buf_.get() + used_ : nullptr; }
  void Commit(size_t n) { used_ += n; }

  Status Put(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      if (used_ == kSinkChunkBytes) MTPS_RETURN_IF_ERROR(Flush());
      const size_t take = std::min(n, kSinkChunkBytes - used_);
      std::memcpy(buf_.get() + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
    }
    return Status::OK();
  }

  // Hands on data[0..n) directly (after what is buffered), in pieces of at
  // most a chunk.
  Status PutLarge(const char* data, size_t n) {
    MTPS_RETURN_IF_ERROR(Flush());
    while (n > 0) {
      const size_t take = std::min(n, kSinkChunkBytes);
      checksum_.Update(data, take);
      MTPS_RETURN_IF_ERROR(sink_(data, take));
      data += take;
      n -= take;
    }
    return Status::OK();
  }

  Status Flush() {
    if (used_ == 0) return Status::OK();
    checksum_.Update(buf_.get(), used_);
    const size_t n = used_;
    used_ = 0;
    return sink_(buf_.get(), n);
  }

  // Appends the checksum of everything so far and hands the rest on.
  Status Finish() {
    MTPS_RETURN_IF_ERROR(Flush());
    char digest[kChecksumBytes];
    Store<uint64_t>(digest, checksum_.Digest());
    return sink_(digest, sizeof(digest));
  }

 private:
  const std::function<Status(const char* data, size_t size)>& sink_;
  std::unique_ptr<char[]> buf_;
  size_t used_ = 0;
  SnapshotChecksum checksum_;
};

// Memory for a snapshot's copy of `bytes` bytes (to free with std::free).
// Big ones are huge-page aligned and advised MADV_HUGEPAGE like the arena:
// faulting in a fresh copy page by page took 4 times as long as the copy
// (60 ms against 15 ms for 98 MB, measured), and the writer's row gathers
// miss the TLB less.
void* AllocForCopy(size_t bytes) {
  void* mem = nullptr;
  if (bytes >= kHugePage) {
    if (posix_memalign(&mem, kHugePage, bytes) != 0) throw std::bad_alloc();
    madvise(mem, bytes & ~(kHugePage - 1), MADV_HUGEPAGE);  // advisory
    return mem;
  }
  mem = std::malloc(std::max<size_t>(bytes, 1));
  if (mem == nullptr) throw std::bad_alloc();
  return mem;
}

// A zeroed bucket array of `bytes` bytes (to free with std::free), huge-page
// aligned and advised MADV_HUGEPAGE when big, like the arena: every key's
// bucket is a random access, and with 4 KiB pages each one also missed the
// TLB.
void* AllocZeroedIndex(size_t bytes) {
  if (bytes < kHugePage) {
    void* mem = std::calloc(bytes, 1);
    if (mem == nullptr) throw std::bad_alloc();
    return mem;
  }
  void* mem = AllocForCopy(bytes);
  std::memset(mem, 0, bytes);
  return mem;
}

// SnapshotChecksum's arithmetic: xxHash64's primes and round.
constexpr uint64_t kPrime1 = 0x9e3779b185ebca87ULL;
constexpr uint64_t kPrime2 = 0xc2b2ae3d27d4eb4fULL;
inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t ChecksumRound(uint64_t acc, uint64_t word) {
  return Rotl(acc + word * kPrime2, 31) * kPrime1;
}

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
      adam_table_step_(options.optimizer.adam().step_count() == config::Adam::TABLE),
      ftrl_alpha_(options.optimizer.ftrl().alpha()),
      ftrl_beta_(options.optimizer.ftrl().beta()),
      ftrl_l1_(options.optimizer.ftrl().l1()),
      ftrl_l2_(options.optimizer.ftrl().l2()),
      admission_min_count_(static_cast<uint32_t>(std::max(options.admission_min_count, 0))),
      evict_after_steps_(static_cast<uint32_t>(std::max<int64_t>(options.evict_after_steps, 0))),
      max_rows_(static_cast<size_t>(std::max<int64_t>(options.max_rows, 0))),
      lru_rng_(InitialLruState(options.seed)) {
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
  StartDelta();  // the base: the empty table at step 0
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
  // The index grows before the row is taken and counted: if growing (or
  // taking the row) throws, nothing of the key is left half-inserted.
  if (key != kEmptyKey && occupied_ + 1 > grow_at_) Rehash(capacity_ * 2);
  const uint32_t row = NewRow(key);
  ++num_rows_;
  ++counters_.admitted;
  const uint32_t now = static_cast<uint32_t>(step_);
  const uint64_t h = Mix64(key);
  key_sum_ += h;
  stamp_sum_ += now;
  // Its stamp tells a row created now from older ones only once the step
  // has moved on from the base's.
  if (step_ == base_.step && !created_overflow_) created_at_base_.push_back(key);
  if (key == kEmptyKey) {
    has_empty_key_ = true;
    empty_key_bucket_ = Bucket{kEmptyKey, row, now};
    return &empty_key_bucket_;
  }
  size_t i = h & mask_;
  while (buckets_[i].key != kEmptyKey) i = (i + 1) & mask_;
  buckets_[i] = Bucket{key, row, now};
  layout_sum_ += h * (2 * i + 1);
  ++occupied_;
  return &buckets_[i];
}

uint32_t SparseTable::AllocRow() {
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
  return row;
}

uint32_t SparseTable::NewRow(uint64_t key) {
  const uint32_t row = AllocRow();
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
  const Bucket& gone = buckets_[pos];
  const uint64_t gone_hash = Mix64(gone.key);
  free_rows_.push_back(gone.row);
  --num_rows_;
  key_sum_ -= gone_hash;
  stamp_sum_ -= gone.step;
  layout_sum_ -= gone_hash * (2 * pos + 1);
  NoteRemoved(gone.key);
  NoteDirty(pos);
  // Backward shift: walk the probe run after the hole; an entry may fill the
  // hole when the hole lies on its path from its home bucket, i.e. its home
  // is not cyclically within (hole, j].
  size_t hole = pos;
  for (size_t j = (pos + 1) & mask_; buckets_[j].key != kEmptyKey; j = (j + 1) & mask_) {
    const uint64_t h = Mix64(buckets_[j].key);
    const size_t home = h & mask_;
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      buckets_[hole] = buckets_[j];
      layout_sum_ += h * (2 * hole + 1) - h * (2 * j + 1);
      NoteDirty(j);
      hole = j;
    }
  }
  buckets_[hole] = Bucket{kEmptyKey, 0, 0};
  --occupied_;
}

void SparseTable::EraseEmptyKey() {
  free_rows_.push_back(empty_key_bucket_.row);
  --num_rows_;
  key_sum_ -= Mix64(kEmptyKey);
  stamp_sum_ -= empty_key_bucket_.step;
  NoteRemoved(kEmptyKey);
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
      BoundDeltaLists();
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

void SparseTable::Rehash(size_t new_capacity, bool allow_sweep) {
  DCHECK_EQ(new_capacity & (new_capacity - 1), 0u);
  void* mem = AllocZeroedIndex(new_capacity * sizeof(Bucket));
  std::unique_ptr<Bucket[], FreeDeleter> fresh(static_cast<Bucket*>(mem));
  const size_t new_mask = new_capacity - 1;
  // With eviction by age the rebuild is also a full sweep: the positions
  // change, so the incremental sweep restarts at 0, and a row that expired
  // meanwhile must not wait for another period.
  const bool sweep = allow_sweep && evict_after_steps_ > 0;
  size_t kept = 0;
  uint64_t layout_sum = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey) continue;
    const uint64_t h = Mix64(b.key);
    if (sweep && Age(b.step) >= evict_after_steps_) {
      free_rows_.push_back(b.row);
      --num_rows_;
      ++counters_.evicted;
      key_sum_ -= h;
      stamp_sum_ -= b.step;
      NoteRemoved(b.key);
      continue;
    }
    size_t j = h & new_mask;
    while (fresh[j].key != kEmptyKey) j = (j + 1) & new_mask;
    fresh[j] = b;
    layout_sum += h * (2 * j + 1);
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
  layout_sum_ = layout_sum;
  // Every bucket may have moved: the delta lists them all.
  layout_all_ = true;
  std::vector<size_t>().swap(dirty_pos_);
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
  BoundDeltaLists();
}

bool SparseTable::InsertMayFreeRows() const {
  // The row cap evicts before inserting into a full table; with eviction by
  // age, growing the index also sweeps it.
  return (max_rows_ > 0 && num_rows_ >= max_rows_) ||
         (evict_after_steps_ > 0 && occupied_ + 1 > grow_at_);
}

template <size_t kDim>
void SparseTable::PullRows(const uint64_t* keys, const uint32_t* sel, size_t m, bool create_missing,
                           float* out) {
  const size_t dim = kDim != 0 ? kDim : static_cast<size_t>(dim_);
  const size_t row_bytes = dim * sizeof(float);
  const bool insert = create_missing && sketch_ == nullptr;
  // Rows of at most two cache lines are also prefetched as soon as their
  // bucket is read, a block ahead of their copy: at dim 16 that moved
  // 13.4-14.4 -> 16.2-16.3 M keys/s (ps_bench in-process, 10M rows). Bigger
  // rows would overrun the L1 cache by then (dim 64: 10-15% slower).
  const bool early_rows = row_bytes <= 2 * kCacheLine;
  auto position = [sel](size_t i) -> size_t { return sel == nullptr ? i : sel[i]; };
  // The rows of the block's keys (nullptr: missing, answered with its
  // initial value). Rows never move, and none is freed while they are held:
  // an insertion that may free one first copies the rows found before it.
  const float* rows[kBlock];
  for (size_t start = 0; start < m; start += kBlock) {
    const size_t end = std::min(m, start + kBlock);
    size_t copied = start;
    auto copy_to = [&](size_t to) {
      for (size_t i = copied; i < std::min(to, copied + kRowAhead); ++i) {
        if (rows[i - start] != nullptr) PrefetchSpan<false>(rows[i - start], row_bytes);
      }
      for (size_t i = copied; i < to; ++i) {
        if (i + kRowAhead < to && rows[i + kRowAhead - start] != nullptr) {
          PrefetchSpan<false>(rows[i + kRowAhead - start], row_bytes);
        }
        const size_t pos = position(i);
        float* dst = out + pos * dim;
        const float* row = rows[i - start];
        if (row != nullptr) {
          std::memcpy(dst, row, row_bytes);
        } else {
          for (size_t j = 0; j < dim; ++j) {
            dst[j] = InitialValue(seed_, keys[pos], static_cast<int>(j), init_scale_);
          }
        }
      }
      copied = to;
    };
    for (size_t i = start; i < end; ++i) {
      if (i + kBucketAhead < m) Prefetch(keys[position(i + kBucketAhead)]);
      const uint64_t key = keys[position(i)];
      const Bucket* b = Find(key);
      if (b == nullptr && insert) {
        if (InsertMayFreeRows()) copy_to(i);
        try {
          b = Insert(key);
        } catch (...) {
          copy_to(i);  // out of rows or memory: the keys before it are served
          throw;
        }
      }
      rows[i - start] = b != nullptr ? RowPtr(b->row) : nullptr;
      if (early_rows && b != nullptr) PrefetchSpan<false>(rows[i - start], row_bytes);
    }
    copy_to(end);
  }
}

template <SparseTable::OptimizerKind kKind>
void SparseTable::PushRows(const uint64_t* keys, const uint32_t* sel, size_t m,
                           const float* grads) {
  const size_t dim = static_cast<size_t>(dim_);
  const size_t row_bytes = row_floats_ * sizeof(float);
  const uint32_t now = static_cast<uint32_t>(step_);
  const FtrlParams ftrl{ftrl_alpha_, ftrl_beta_, ftrl_l1_, ftrl_l2_};
  const AdamStepper adam(learning_rate_, beta1_, beta2_);
  const AdamStep table_step = adam.At(static_cast<int64_t>(step_));
  auto position = [sel](size_t i) -> size_t { return sel == nullptr ? i : sel[i]; };
  uint64_t stamp_change = 0;  // to stamp_sum_ (modulo 2^64)
  // As in PullRows; nullptr: a key only counted by admission. A key
  // repeated in the block has the same row twice and is updated twice, in
  // order.
  float* rows[kBlock];
  for (size_t start = 0; start < m; start += kBlock) {
    const size_t end = std::min(m, start + kBlock);
    size_t updated = start;
    auto update_to = [&](size_t to) {
      for (size_t i = updated; i < std::min(to, updated + kRowAhead); ++i) {
        if (rows[i - start] != nullptr) PrefetchSpan<true>(rows[i - start], row_bytes);
      }
      for (size_t i = updated; i < to; ++i) {
        if (i + kRowAhead < to && rows[i + kRowAhead - start] != nullptr) {
          PrefetchSpan<true>(rows[i + kRowAhead - start], row_bytes);
        }
        float* w = rows[i - start];
        if (w == nullptr) continue;
        const float* g = grads + position(i) * dim;
        if constexpr (kKind == OptimizerKind::kSgd) {
          SgdUpdate(w, g, dim, learning_rate_);
        } else if constexpr (kKind == OptimizerKind::kAdagrad) {
          AdagradUpdate(w, w + dim, g, dim, learning_rate_);
        } else if constexpr (kKind == OptimizerKind::kAdam) {
          // Per-row step count, kept with either step_count; it saturates
          // where the bias correction is long 1.
          uint32_t t = LoadU32(w + 3 * dim);
          if (t != std::numeric_limits<uint32_t>::max()) ++t;
          StoreU32(w + 3 * dim, t);
          AdamUpdate(w, w + dim, w + 2 * dim, g, dim, beta1_, beta2_, epsilon_,
                     adam_table_step_ ? table_step : adam.At(t));
        } else {
          FtrlUpdate(w, w + dim, w + 2 * dim, g, dim, ftrl);
        }
      }
      updated = to;
    };
    for (size_t i = start; i < end; ++i) {
      if (i + kBucketAhead < m) Prefetch(keys[position(i + kBucketAhead)]);
      const uint64_t key = keys[position(i)];
      Bucket* b = Find(key);
      if (b == nullptr) {
        if (sketch_ != nullptr && sketch_->Add(key) < admission_min_count_) {
          ++counters_.rejected;
          rows[i - start] = nullptr;
          continue;
        }
        if (InsertMayFreeRows()) update_to(i);
        try {
          b = Insert(key);
        } catch (...) {
          // Out of rows or memory: the keys before it are applied (and
          // counted in the stamp digest), as one key at a time would have.
          update_to(i);
          stamp_sum_ += stamp_change;
          throw;
        }
      }
      stamp_change += uint64_t{now} - b->step;
      b->step = now;
      rows[i - start] = RowPtr(b->row);
    }
    update_to(end);
  }
  stamp_sum_ += stamp_change;
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
  BoundDeltaLists();
}

MemoryReport SparseTable::memory_report() const {
  MemoryReport r;
  r.rows = num_rows_;
  r.index_bytes = capacity_ * sizeof(Bucket);
  r.arena_bytes = chunks_.size() * chunk_bytes_;
  r.other_bytes =
      (sketch_ ? sketch_->memory_bytes() + sketch_->tracking_bytes() : 0) +
      free_rows_.capacity() * sizeof(free_rows_[0]) + chunks_.capacity() * sizeof(chunks_[0]) +
      created_at_base_.capacity() * sizeof(created_at_base_[0]) +
      removed_.capacity() * sizeof(removed_[0]) + dirty_pos_.capacity() * sizeof(dirty_pos_[0]);
  r.total_bytes = r.index_bytes + r.arena_bytes + r.other_bytes;
  r.raw_row_bytes = sizeof(uint64_t) + row_floats_ * sizeof(float);
  r.bytes_per_row = num_rows_ == 0 ? 0.0 : static_cast<double>(r.total_bytes) / num_rows_;
  return r;
}

size_t SparseTable::memory_bytes() const { return memory_report().total_bytes; }

void SparseTable::ForEachRow(
    const std::function<void(uint64_t key, const float* embedding)>& fn) const {
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key != kEmptyKey) fn(b.key, RowPtr(b.row));
  }
  if (has_empty_key_) fn(kEmptyKey, RowPtr(empty_key_bucket_.row));
}

// ---------------------------------------------------------------------------
// Snapshots

void SparseTable::Clear() {
  buckets_.reset();
  capacity_ = 0;
  mask_ = 0;
  occupied_ = 0;
  has_empty_key_ = false;
  empty_key_bucket_ = Bucket{kEmptyKey, kNoRow, 0};
  chunks_.clear();
  chunks_.shrink_to_fit();
  arena_rows_ = 0;
  free_rows_.clear();
  free_rows_.shrink_to_fit();
  num_rows_ = 0;
  if (sketch_ != nullptr) sketch_->Clear();
  step_ = 0;
  lru_rng_ = InitialLruState(seed_);
  counters_ = Counters{};
  key_sum_ = 0;
  stamp_sum_ = 0;
  std::vector<uint64_t>().swap(created_at_base_);
  std::vector<uint64_t>().swap(removed_);
  Rehash(kMinCapacity);  // from an empty index: allocates it, resets the sweep
}

SparseTableSnapshot SparseTable::Snapshot() const {
  SparseTableSnapshot s;
  s.kind_ = kind_;
  s.dim_ = dim_;
  s.row_floats_ = row_floats_;
  s.step_ = step_;
  s.counters_ = counters_;
  s.num_rows_ = num_rows_;
  s.buckets_.reset(static_cast<Bucket*>(AllocForCopy(capacity_ * sizeof(Bucket))));
  std::memcpy(s.buckets_.get(), buckets_.get(), capacity_ * sizeof(Bucket));
  s.capacity_ = capacity_;
  s.has_empty_key_ = has_empty_key_;
  s.empty_key_bucket_ = empty_key_bucket_;
  s.sweep_cursor_ = sweep_cursor_;
  s.lru_rng_ = lru_rng_;
  s.arena_rows_ = arena_rows_;
  s.arena_.reset(static_cast<float*>(
      AllocForCopy(static_cast<size_t>(arena_rows_) * row_floats_ * sizeof(float))));
  const size_t chunk_rows = size_t{1} << chunk_shift_;
  for (size_t c = 0; c < chunks_.size(); ++c) {
    const size_t first = c * chunk_rows;
    if (first >= arena_rows_) break;
    const size_t n = std::min(chunk_rows, arena_rows_ - first);
    std::memcpy(s.arena_.get() + first * row_floats_, chunks_[c].get(),
                n * row_floats_ * sizeof(float));
  }
  if (sketch_ != nullptr) {
    s.sketch_width_log2_ = sketch_->width_log2();
    s.sketch_seed_ = sketch_->hash_seed();
    s.sketch_counters_ = sketch_->counters();
  }
  return s;
}

size_t SparseTableSnapshot::memory_bytes() const {
  return (buckets_ != nullptr ? capacity_ * sizeof(buckets_[0]) : 0) +
         arena_rows_ * row_floats_ * sizeof(float) +
         sketch_counters_.size() * sizeof(sketch_counters_[0]) +
         (changed_keys_.size() + changed_pos_.size() + moved_keys_.size() + moved_pos_.size() +
          emptied_.size() + removed_.size()) *
             sizeof(uint64_t) +
         (changed_stamps_.size() + sketch_blocks_.size()) * sizeof(uint32_t);
}

Status WriteSparseSnapshot(const SparseTableSnapshot& snapshot,
                           const std::function<Status(const char* data, size_t size)>& sink) {
  const SparseTableSnapshot& s = snapshot;
  ChunkWriter out(sink);
  if (s.is_delta_) {
    char header[kDeltaHeaderBytes] = {};
    std::memcpy(header, kDeltaMagic, sizeof(kDeltaMagic));
    Store<uint32_t>(header + 8, kDeltaVersion);
    Store<uint32_t>(header + 12, static_cast<uint32_t>(s.dim_));
    Store<uint32_t>(header + 16, static_cast<uint32_t>(s.row_floats_));
    Store<uint32_t>(header + 20, KindCode(s.kind_));
    Store<uint32_t>(header + 24, s.delta_flags_);
    Store<uint32_t>(header + 28, s.key0_state_);
    auto put_chain = [&header](size_t at, const auto& c) {
      Store<uint64_t>(header + at, c.step);
      Store<uint64_t>(header + at + 8, c.rows);
      Store<int64_t>(header + at + 16, c.counters.admitted);
      Store<int64_t>(header + at + 24, c.counters.rejected);
      Store<int64_t>(header + at + 32, c.counters.evicted);
      Store<uint64_t>(header + at + 40, c.key_sum);
      Store<uint64_t>(header + at + 48, c.stamp_sum);
      Store<uint64_t>(header + at + 56, c.layout_sum);
      Store<uint32_t>(header + at + 64, c.capacity_log2);
    };
    put_chain(kBaseAt, s.base_);
    put_chain(kResultAt, s.result_);
    Store<uint64_t>(header + 176, s.sweep_cursor_);
    Store<uint64_t>(header + 184, s.lru_rng_);
    const bool sketch = s.sketch_width_log2_ != 0;
    Store<uint32_t>(header + 192, sketch ? uint32_t{CountMinSketch::kDepth} : 0u);
    Store<uint32_t>(header + 196, sketch ? static_cast<uint32_t>(s.sketch_width_log2_) : 0u);
    Store<uint64_t>(header + 200, sketch ? s.sketch_seed_ : 0u);
    Store<uint32_t>(header + 208, sketch ? static_cast<uint32_t>(s.sketch_block_log2_) : 0u);
    Store<uint64_t>(header + 216, s.sketch_blocks_.size());
    Store<uint64_t>(header + 224, s.changed_keys_.size());
    Store<uint64_t>(header + 232, s.moved_keys_.size());
    Store<uint64_t>(header + 240, s.emptied_.size());
    Store<uint64_t>(header + 248, s.removed_.size());
    MTPS_RETURN_IF_ERROR(out.Put(header, sizeof(header)));
    const size_t block = sketch ? size_t{1} << s.sketch_block_log2_ : 0;
    for (size_t i = 0; i < s.sketch_blocks_.size(); ++i) {
      MTPS_RETURN_IF_ERROR(out.Put(&s.sketch_blocks_[i], sizeof(uint32_t)));
      MTPS_RETURN_IF_ERROR(
          out.Put(s.sketch_counters_.data() + i * block, block * sizeof(uint16_t)));
    }
    const size_t row_bytes = s.row_floats_ * sizeof(float);
    const size_t record = kChangedHeadBytes + row_bytes;
    for (size_t i = 0; i < s.changed_keys_.size(); ++i) {
      const float* src = s.arena_.get() + i * s.row_floats_;
      if (char* dst = out.Room(record)) {
        Store<uint64_t>(dst, s.changed_keys_[i]);
        Store<uint64_t>(dst + 8, s.changed_pos_[i]);
        Store<uint32_t>(dst + 16, s.changed_stamps_[i]);
        std::memcpy(dst + kChangedHeadBytes, src, row_bytes);
        out.Commit(record);
        continue;
      }
      MTPS_RETURN_IF_ERROR(out.Put(&s.changed_keys_[i], sizeof(uint64_t)));
      MTPS_RETURN_IF_ERROR(out.Put(&s.changed_pos_[i], sizeof(uint64_t)));
      MTPS_RETURN_IF_ERROR(out.Put(&s.changed_stamps_[i], sizeof(uint32_t)));
      MTPS_RETURN_IF_ERROR(out.Put(src, row_bytes));
    }
    for (size_t i = 0; i < s.moved_keys_.size(); ++i) {
      MTPS_RETURN_IF_ERROR(out.Put(&s.moved_keys_[i], sizeof(uint64_t)));
      MTPS_RETURN_IF_ERROR(out.Put(&s.moved_pos_[i], sizeof(uint64_t)));
    }
    MTPS_RETURN_IF_ERROR(out.Put(s.emptied_.data(), s.emptied_.size() * sizeof(uint64_t)));
    MTPS_RETURN_IF_ERROR(out.Put(s.removed_.data(), s.removed_.size() * sizeof(uint64_t)));
    return out.Finish();
  }
  char header[kRowsHeaderBytes] = {};
  std::memcpy(header, kRowsMagic, sizeof(kRowsMagic));
  Store<uint32_t>(header + 8, kRowsVersion);
  Store<uint32_t>(header + 12, static_cast<uint32_t>(s.dim_));
  Store<uint32_t>(header + 16, static_cast<uint32_t>(s.row_floats_));
  Store<uint32_t>(header + 20, KindCode(s.kind_));
  Store<uint64_t>(header + 24, s.step_);
  Store<int64_t>(header + 32, s.counters_.admitted);
  Store<int64_t>(header + 40, s.counters_.rejected);
  Store<int64_t>(header + 48, s.counters_.evicted);
  Store<uint64_t>(header + 56, s.num_rows_);
  Store<uint32_t>(header + 64,
                  s.capacity_ == 0 ? 0u : static_cast<uint32_t>(__builtin_ctzll(s.capacity_)));
  const bool sketch = !s.sketch_counters_.empty();
  Store<uint32_t>(header + 68, sketch ? uint32_t{CountMinSketch::kDepth} : 0u);
  Store<uint64_t>(header + 72, s.sweep_cursor_);
  Store<uint64_t>(header + 80, s.lru_rng_);
  Store<uint32_t>(header + 88, sketch ? static_cast<uint32_t>(s.sketch_width_log2_) : 0u);
  Store<uint64_t>(header + 96, sketch ? s.sketch_seed_ : 0u);
  MTPS_RETURN_IF_ERROR(out.Put(header, sizeof(header)));
  if (sketch) {
    MTPS_RETURN_IF_ERROR(out.PutLarge(reinterpret_cast<const char*>(s.sketch_counters_.data()),
                                      s.sketch_counters_.size() * sizeof(uint16_t)));
  }

  const size_t row_bytes = s.row_floats_ * sizeof(float);
  const size_t record = kRecordHeadBytes + row_bytes;
  size_t written = 0;
  auto put_row = [&](uint64_t key, uint32_t stamp, uint32_t row) -> Status {
    ++written;
    const float* src = s.arena_.get() + static_cast<size_t>(row) * s.row_floats_;
    if (char* dst = out.Room(record)) {
      Store<uint64_t>(dst, key);
      Store<uint32_t>(dst + sizeof(uint64_t), stamp);
      std::memcpy(dst + kRecordHeadBytes, src, row_bytes);
      out.Commit(record);
      return Status::OK();
    }
    MTPS_RETURN_IF_ERROR(out.Put(&key, sizeof(key)));
    MTPS_RETURN_IF_ERROR(out.Put(&stamp, sizeof(stamp)));
    return out.Put(src, row_bytes);
  };
  if (s.has_empty_key_) {
    MTPS_RETURN_IF_ERROR(
        put_row(SparseTable::kEmptyKey, s.empty_key_bucket_.step, s.empty_key_bucket_.row));
  }
  if (s.capacity_ > 0) {
    // From just after a free bucket (there is one: the index is at most 7/10
    // full), so that no probe run is cut in two.
    const size_t mask = s.capacity_ - 1;
    size_t start = 0;
    while (s.buckets_[start].key != SparseTable::kEmptyKey) ++start;
    start = (start + 1) & mask;
    for (size_t j = 0; j < s.capacity_; ++j) {
      const size_t ahead = (start + j + kWritePrefetch) & mask;
      if (s.buckets_[ahead].key != SparseTable::kEmptyKey) {
        __builtin_prefetch(s.arena_.get() +
                           static_cast<size_t>(s.buckets_[ahead].row) * s.row_floats_);
      }
      const auto& b = s.buckets_[(start + j) & mask];
      if (b.key == SparseTable::kEmptyKey) continue;
      MTPS_RETURN_IF_ERROR(put_row(b.key, b.step, b.row));
    }
  }
  DCHECK_EQ(written, s.num_rows_);
  return out.Finish();
}

Status SparseTable::Restore(const char* data, size_t size, const std::string& where) {
  Clear();
  const Status status = RestoreChecked(data, size);
  if (!status.ok()) Clear();
  StartDelta();
  if (status.ok()) return status;
  return Status(status.code(), where + ": " + status.message());
}

Status SparseTable::RestoreChecked(const char* data, size_t size) {
  // Structure: every length is checked against `size` before anything is
  // read or allocated.
  if (size < kRowsHeaderBytes) {
    if (size == 0) return Status::Corruption("empty: no snapshot");
    if (std::memcmp(data, kRowsMagic, std::min(size, sizeof(kRowsMagic))) != 0) {
      return Status::Corruption("not a sparse table snapshot (no MTPSROWS magic)");
    }
    return Status::Corruption("truncated: " + std::to_string(size) +
                              " bytes, the header alone takes " + std::to_string(kRowsHeaderBytes));
  }
  if (std::memcmp(data, kRowsMagic, sizeof(kRowsMagic)) != 0) {
    if (std::memcmp(data, kDeltaMagic, sizeof(kDeltaMagic)) == 0) {
      return Status::Corruption(
          "a delta snapshot (MTPSDELT), not a full one (MTPSROWS): apply it with ApplyDelta to "
          "the table at its base");
    }
    return Status::Corruption("not a sparse table snapshot (no MTPSROWS magic)");
  }
  const uint32_t version = Load<uint32_t>(data + 8);
  if (version != kRowsVersion) {
    return Status::Corruption("format version " + std::to_string(version) +
                              ", this build reads version " + std::to_string(kRowsVersion));
  }
  const uint32_t dim = Load<uint32_t>(data + 12);
  const uint32_t row_floats = Load<uint32_t>(data + 16);
  OptimizerKind kind;
  MTPS_RETURN_IF_ERROR(CheckRowFormat(dim, row_floats, Load<uint32_t>(data + 20), &kind));
  const uint64_t step = Load<uint64_t>(data + 24);
  Counters counters;
  counters.admitted = Load<int64_t>(data + 32);
  counters.rejected = Load<int64_t>(data + 40);
  counters.evicted = Load<int64_t>(data + 48);
  const uint64_t rows = Load<uint64_t>(data + 56);
  const uint32_t capacity_log2 = Load<uint32_t>(data + 64);
  const uint32_t sketch_depth = Load<uint32_t>(data + 68);
  const uint64_t sweep_cursor = Load<uint64_t>(data + 72);
  const uint64_t lru_rng = Load<uint64_t>(data + 80);
  const uint32_t sketch_width_log2 = Load<uint32_t>(data + 88);
  const uint32_t reserved = Load<uint32_t>(data + 92);
  const uint64_t sketch_seed = Load<uint64_t>(data + 96);
  if (reserved != 0) {
    return Status::Corruption("reserved header field is " + std::to_string(reserved) + ", not 0");
  }
  if (sketch_depth != 0 && sketch_depth != static_cast<uint32_t>(CountMinSketch::kDepth)) {
    return Status::Corruption("admission sketch of depth " + std::to_string(sketch_depth) +
                              " (0 or " + std::to_string(CountMinSketch::kDepth) + ")");
  }
  if (sketch_depth == 0 ? (sketch_width_log2 != 0 || sketch_seed != 0)
                        : (sketch_width_log2 < 4 || sketch_width_log2 > 30)) {
    return Status::Corruption("admission sketch of depth " + std::to_string(sketch_depth) +
                              " with width 2^" + std::to_string(sketch_width_log2));
  }
  const uint64_t sketch_bytes =
      (static_cast<uint64_t>(sketch_depth) << sketch_width_log2) * sizeof(uint16_t);
  const uint64_t after_header = size - kRowsHeaderBytes;
  if (after_header < sketch_bytes + kChecksumBytes) {
    return Status::Corruption("truncated: " + std::to_string(after_header) +
                              " bytes after the header, the admission sketch takes " +
                              std::to_string(sketch_bytes) + " and the checksum " +
                              std::to_string(kChecksumBytes));
  }
  const uint64_t record = kRecordHeadBytes + uint64_t{row_floats} * sizeof(float);
  const uint64_t body = after_header - sketch_bytes - kChecksumBytes;
  const uint64_t present = body / record;
  if (rows > present) {
    return Status::Corruption("truncated: " + std::to_string(rows) + " rows announced, " +
                              std::to_string(present) + " present");
  }
  if (body != rows * record) {
    return Status::Corruption(std::to_string(body - rows * record) + " stray bytes after the " +
                              std::to_string(rows) + " rows announced");
  }
  const uint64_t stored_sum = Load<uint64_t>(data + size - kChecksumBytes);
  const uint64_t actual_sum = SnapshotChecksum::Of(data, size - kChecksumBytes);
  if (stored_sum != actual_sum) {
    return Status::Corruption("checksum mismatch (stored " + std::to_string(stored_sum) +
                              ", computed " + std::to_string(actual_sum) + ")");
  }

  // The bytes are what a writer wrote; do they fit this table?
  if (static_cast<int>(dim) != dim_) {
    return Status::InvalidArgument("snapshot of dim " + std::to_string(dim) + ", this table's is " +
                                   std::to_string(dim_));
  }
  if (kind != kind_) {
    return Status::InvalidArgument(std::string("snapshot's optimizer is ") + KindName(kind) +
                                   ", this table's is " + KindName(kind_));
  }
  // And are they consistent?
  if (step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || counters.admitted < 0 ||
      counters.rejected < 0 || counters.evicted < 0) {
    return Status::Corruption("negative step or counter");
  }
  if (rows > kMaxRows) {
    return Status::Corruption(std::to_string(rows) + " rows, more than a table holds");
  }
  if (capacity_log2 < 4 || capacity_log2 > kMaxCapacityLog2 ||
      sweep_cursor >= (uint64_t{1} << capacity_log2)) {
    return Status::Corruption("index of 2^" + std::to_string(capacity_log2) +
                              " buckets with its sweep at " + std::to_string(sweep_cursor));
  }
  const char* sketch_data = data + kRowsHeaderBytes;
  if (sketch_ != nullptr && sketch_depth != 0) {
    MTPS_RETURN_IF_ERROR(sketch_->RestoreCounters(static_cast<int>(sketch_width_log2), sketch_seed,
                                                  sketch_data, sketch_bytes));
  }

  step_ = step;
  counters_ = counters;
  lru_rng_ = lru_rng != 0 ? lru_rng : InitialLruState(seed_);
  const char* records = sketch_data + sketch_bytes;
  const size_t n = static_cast<size_t>(rows);

  // A row cap below the snapshot's rows keeps the n most recently updated:
  // every row younger than the cap-th youngest age, then rows of that age in
  // order.
  const bool capped = max_rows_ > 0 && n > max_rows_;
  uint32_t cut_age = 0;
  size_t ties_left = 0;
  if (capped) {
    std::vector<uint32_t> ages(n);
    for (size_t r = 0; r < n; ++r) {
      ages[r] = Age(Load<uint32_t>(records + r * record + sizeof(uint64_t)));
    }
    std::nth_element(ages.begin(), ages.begin() + (max_rows_ - 1), ages.end());
    cut_age = ages[max_rows_ - 1];
    const size_t younger = static_cast<size_t>(
        std::count_if(ages.begin(), ages.end(), [cut_age](uint32_t a) { return a < cut_age; }));
    ties_left = max_rows_ - younger;
  }
  const size_t keep = capped ? max_rows_ : n;
  size_t needed = kMinCapacity;
  while (GrowAt(needed) < keep) needed <<= 1;
  const size_t hint = size_t{1} << capacity_log2;
  const bool same_layout = !capped && hint >= needed && hint <= kMaxCapacityHint * needed;
  Rehash(same_layout ? hint : needed);
  if (same_layout) sweep_cursor_ = static_cast<size_t>(sweep_cursor);

  const size_t row_bytes = row_floats_ * sizeof(float);
  for (size_t r = 0; r < n; ++r) {
    const char* rec = records + r * record;
    const uint64_t key = Load<uint64_t>(rec);
    const uint32_t stamp = Load<uint32_t>(rec + sizeof(uint64_t));
    if (capped) {
      const uint32_t age = Age(stamp);
      if (age > cut_age || (age == cut_age && ties_left == 0)) {
        ++counters_.evicted;
        continue;
      }
      if (age == cut_age) --ties_left;
    }
    Bucket* b;
    const uint64_t h = Mix64(key);
    if (key == kEmptyKey) {
      if (has_empty_key_) return Status::Corruption("key 0 appears twice");
      has_empty_key_ = true;
      b = &empty_key_bucket_;
    } else {
      size_t i = h & mask_;
      while (buckets_[i].key != kEmptyKey) {
        if (buckets_[i].key == key) {
          return Status::Corruption("key " + std::to_string(key) + " appears twice");
        }
        i = (i + 1) & mask_;
      }
      DCHECK_LT(occupied_, grow_at_);
      ++occupied_;
      b = &buckets_[i];
      layout_sum_ += h * (2 * i + 1);
    }
    const uint32_t row = AllocRow();
    *b = Bucket{key, row, stamp};
    std::memcpy(RowPtr(row), rec + kRecordHeadBytes, row_bytes);
    ++num_rows_;
    key_sum_ += h;
    stamp_sum_ += stamp;
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Delta snapshots

SparseTable::ChainState SparseTable::CurrentChain() const {
  ChainState c;
  c.step = step_;
  c.rows = num_rows_;
  c.counters = counters_;
  c.key_sum = key_sum_;
  c.stamp_sum = stamp_sum_;
  c.layout_sum = layout_sum_;
  c.capacity_log2 = static_cast<uint32_t>(__builtin_ctzll(capacity_));
  return c;
}

void SparseTable::StartDelta() {
  base_ = CurrentChain();
  created_at_base_.clear();
  removed_.clear();
  dirty_pos_.clear();
  created_overflow_ = false;
  removed_overflow_ = false;
  layout_all_ = false;
  if (sketch_ != nullptr) sketch_->MarkClean();
}

void SparseTable::CompactDeltaLists(size_t limit) {
  auto sort_unique = [](auto* v) {
    std::sort(v->begin(), v->end());
    v->erase(std::unique(v->begin(), v->end()), v->end());
  };
  if (removed_.size() > limit) {
    // Keys present again are changed rows, not removals.
    sort_unique(&removed_);
    removed_.erase(std::remove_if(removed_.begin(), removed_.end(),
                                  [this](uint64_t key) { return Find(key) != nullptr; }),
                   removed_.end());
    if (removed_.size() > limit / 2) {
      removed_overflow_ = true;
      layout_all_ = true;
      std::vector<uint64_t>().swap(removed_);
      std::vector<size_t>().swap(dirty_pos_);
    }
  }
  if (dirty_pos_.size() > limit) {
    sort_unique(&dirty_pos_);
    if (dirty_pos_.size() > limit / 2) {
      layout_all_ = true;
      std::vector<size_t>().swap(dirty_pos_);
    }
  }
  if (created_at_base_.size() > limit) {
    sort_unique(&created_at_base_);
    created_at_base_.erase(std::remove_if(created_at_base_.begin(), created_at_base_.end(),
                                          [this](uint64_t key) { return Find(key) == nullptr; }),
                           created_at_base_.end());
    if (created_at_base_.size() > limit / 2) {
      created_overflow_ = true;
      std::vector<uint64_t>().swap(created_at_base_);
    }
  }
}

SparseTableSnapshot SparseTable::DeltaSnapshot() const {
  SparseTableSnapshot s;
  s.kind_ = kind_;
  s.dim_ = dim_;
  s.row_floats_ = row_floats_;
  s.is_delta_ = true;
  s.step_ = step_;
  s.counters_ = counters_;
  s.num_rows_ = num_rows_;
  s.capacity_ = capacity_;
  s.sweep_cursor_ = sweep_cursor_;
  s.lru_rng_ = lru_rng_;
  s.base_ = base_;
  s.result_ = CurrentChain();
  const bool whole = layout_all_;
  s.delta_flags_ = (whole ? kWholeLayout : 0u) | (removed_overflow_ ? kRemovedUnlisted : 0u);

  // A row changed in the period iff its age is below the period's length
  // (stamps modulo 2^32), or, when the list of rows created at the base step
  // overflowed, equal to it.
  const uint64_t period = step_ - base_.step;
  const uint64_t young =
      std::min<uint64_t>(period + (created_overflow_ ? 1 : 0), uint64_t{1} << 32);
  auto changed = [&](uint32_t stamp) { return uint64_t{Age(stamp)} < young; };
  // The buckets of rows created at the base step that their stamps miss.
  std::vector<size_t> created_pos;
  bool key0_created = false;
  if (!created_at_base_.empty()) {
    for (uint64_t key : created_at_base_) {
      const Bucket* b = Find(key);
      if (b == nullptr || changed(b->step)) continue;
      if (key == kEmptyKey) {
        key0_created = true;
      } else {
        created_pos.push_back(static_cast<size_t>(b - buckets_.get()));
      }
    }
    std::sort(created_pos.begin(), created_pos.end());
    created_pos.erase(std::unique(created_pos.begin(), created_pos.end()), created_pos.end());
  }
  std::vector<uint32_t> rows;  // arena rows of the changed records
  auto add_changed = [&](uint64_t key, uint64_t pos, const Bucket& b) {
    s.changed_keys_.push_back(key);
    s.changed_pos_.push_back(pos);
    s.changed_stamps_.push_back(b.step);
    rows.push_back(b.row);
  };
  if (has_empty_key_) {
    if (key0_created || changed(empty_key_bucket_.step)) {
      s.key0_state_ = 2;
      add_changed(kEmptyKey, kNoBucket, empty_key_bucket_);
    } else {
      s.key0_state_ = 1;
    }
  }
  // One pass over the index.
  if (!whole && created_pos.empty()) {
    // The common case, without a branch on the (unpredictable) free buckets.
    for (size_t i = 0; i < capacity_; ++i) {
      const Bucket& b = buckets_[i];
      if (__builtin_expect((b.key != kEmptyKey) & changed(b.step), 0)) add_changed(b.key, i, b);
    }
  } else {
    size_t next_created = 0;
    for (size_t i = 0; i < capacity_; ++i) {
      const Bucket& b = buckets_[i];
      if (b.key == kEmptyKey) continue;
      while (next_created < created_pos.size() && created_pos[next_created] < i) ++next_created;
      if (changed(b.step) ||
          (next_created < created_pos.size() && created_pos[next_created] == i)) {
        add_changed(b.key, i, b);
      } else if (whole) {
        s.moved_keys_.push_back(b.key);
        s.moved_pos_.push_back(i);
      }
    }
  }
  if (!whole) {
    // The buckets that backward shifts rewrote and that the pass did not
    // list: emptied, or holding an unchanged row moved there.
    std::vector<size_t> dirty = dirty_pos_;
    std::sort(dirty.begin(), dirty.end());
    dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
    for (size_t pos : dirty) {
      const Bucket& b = buckets_[pos];
      if (b.key == kEmptyKey) {
        s.emptied_.push_back(pos);
      } else if (!changed(b.step) &&
                 !std::binary_search(created_pos.begin(), created_pos.end(), pos)) {
        s.moved_keys_.push_back(b.key);
        s.moved_pos_.push_back(pos);
      }
    }
  }
  if (!removed_overflow_) {
    s.removed_ = removed_;
    std::sort(s.removed_.begin(), s.removed_.end());
    s.removed_.erase(std::unique(s.removed_.begin(), s.removed_.end()), s.removed_.end());
    s.removed_.erase(std::remove_if(s.removed_.begin(), s.removed_.end(),
                                    [this](uint64_t key) { return Find(key) != nullptr; }),
                     s.removed_.end());
  }
  // The changed rows' content.
  s.arena_rows_ = rows.size();
  s.arena_.reset(static_cast<float*>(AllocForCopy(rows.size() * row_floats_ * sizeof(float))));
  const size_t row_bytes = row_floats_ * sizeof(float);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i + kWritePrefetch < rows.size()) __builtin_prefetch(RowPtr(rows[i + kWritePrefetch]));
    std::memcpy(s.arena_.get() + i * row_floats_, RowPtr(rows[i]), row_bytes);
  }
  if (sketch_ != nullptr) {
    s.sketch_width_log2_ = sketch_->width_log2();
    s.sketch_seed_ = sketch_->hash_seed();
    s.sketch_block_log2_ = sketch_->block_log2();
    s.sketch_blocks_ = sketch_->DirtyBlocks();
    const size_t block = size_t{1} << sketch_->block_log2();
    s.sketch_counters_.resize(s.sketch_blocks_.size() * block);
    for (size_t i = 0; i < s.sketch_blocks_.size(); ++i) {
      std::memcpy(s.sketch_counters_.data() + i * block,
                  sketch_->counters().data() + size_t{s.sketch_blocks_[i]} * block,
                  block * sizeof(uint16_t));
    }
  }
  return s;
}

// A well-formed delta's fields, and where its sections start in the input.
struct SparseTable::DeltaView {
  uint32_t flags = 0;
  uint32_t key0 = 0;
  ChainState base;
  ChainState result;
  uint64_t sweep_cursor = 0;
  uint64_t lru_rng = 0;
  uint32_t sketch_depth = 0;
  uint32_t sketch_width_log2 = 0;
  uint64_t sketch_seed = 0;
  uint32_t sketch_block_log2 = 0;
  uint64_t blocks = 0, changed = 0, moved = 0, emptied = 0, removed = 0;
  const char* block_data = nullptr;
  const char* changed_data = nullptr;
  const char* moved_data = nullptr;
  const char* emptied_data = nullptr;
  const char* removed_data = nullptr;
  size_t changed_record = 0;  // bytes
  size_t block_record = 0;    // bytes

  bool whole() const { return (flags & kWholeLayout) != 0; }
  bool removed_listed() const { return (flags & kRemovedUnlisted) == 0; }
  // The changed records of keys other than 0 are [first_changed(), changed).
  size_t first_changed() const { return key0 == 2 ? 1 : 0; }
  const char* changed_at(size_t i) const { return changed_data + i * changed_record; }
  uint64_t changed_key(size_t i) const { return Load<uint64_t>(changed_at(i)); }
  uint64_t changed_pos(size_t i) const { return Load<uint64_t>(changed_at(i) + 8); }
  uint32_t changed_stamp(size_t i) const { return Load<uint32_t>(changed_at(i) + 16); }
  const char* changed_row(size_t i) const { return changed_at(i) + kChangedHeadBytes; }
  uint64_t moved_key(size_t i) const { return Load<uint64_t>(moved_data + i * kMovedBytes); }
  uint64_t moved_pos(size_t i) const { return Load<uint64_t>(moved_data + i * kMovedBytes + 8); }
  uint64_t emptied_pos(size_t i) const { return Load<uint64_t>(emptied_data + i * 8); }
  uint64_t removed_key(size_t i) const { return Load<uint64_t>(removed_data + i * 8); }
  // The removed keys are strictly ascending (checked).
  bool IsRemoved(uint64_t key) const {
    size_t lo = 0, hi = static_cast<size_t>(removed);
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (removed_key(mid) < key) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo < removed && removed_key(lo) == key;
  }
};

namespace {

// A ChainState from a delta header at p.
template <typename Chain>
void LoadChain(const char* p, Chain* c) {
  c->step = Load<uint64_t>(p);
  c->rows = Load<uint64_t>(p + 8);
  c->counters.admitted = Load<int64_t>(p + 16);
  c->counters.rejected = Load<int64_t>(p + 24);
  c->counters.evicted = Load<int64_t>(p + 32);
  c->key_sum = Load<uint64_t>(p + 40);
  c->stamp_sum = Load<uint64_t>(p + 48);
  c->layout_sum = Load<uint64_t>(p + 56);
  c->capacity_log2 = Load<uint32_t>(p + 64);
}

template <typename Chain>
Status CheckChainFields(const Chain& c, const char* what) {
  if (c.step > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      c.counters.admitted < 0 || c.counters.rejected < 0 || c.counters.evicted < 0) {
    return Status::Corruption(std::string("negative step or counter in the ") + what);
  }
  if (c.rows > kMaxRows) {
    return Status::Corruption(std::string("the ") + what + " has " + std::to_string(c.rows) +
                              " rows, more than a table holds");
  }
  if (c.capacity_log2 < 4 || c.capacity_log2 > kMaxCapacityLog2) {
    return Status::Corruption(std::string("the ") + what + "'s index has 2^" +
                              std::to_string(c.capacity_log2) + " buckets");
  }
  return Status::OK();
}

}  // namespace

Status SparseTable::CheckDelta(const char* data, size_t size, DeltaView* view) const {
  DeltaView& d = *view;
  if (size < kDeltaHeaderBytes) {
    if (size == 0) return Status::Corruption("empty: no delta");
    if (std::memcmp(data, kDeltaMagic, std::min(size, sizeof(kDeltaMagic))) != 0) {
      return Status::Corruption("not a sparse table delta (no MTPSDELT magic)");
    }
    return Status::Corruption("truncated: " + std::to_string(size) +
                              " bytes, the header alone takes " +
                              std::to_string(kDeltaHeaderBytes));
  }
  if (std::memcmp(data, kDeltaMagic, sizeof(kDeltaMagic)) != 0) {
    if (std::memcmp(data, kRowsMagic, sizeof(kRowsMagic)) == 0) {
      return Status::Corruption(
          "a full snapshot (MTPSROWS), not a delta (MTPSDELT): load it with Restore");
    }
    return Status::Corruption("not a sparse table delta (no MTPSDELT magic)");
  }
  const uint32_t version = Load<uint32_t>(data + 8);
  if (version != kDeltaVersion) {
    return Status::Corruption("delta format version " + std::to_string(version) +
                              ", this build reads version " + std::to_string(kDeltaVersion));
  }
  const uint32_t dim = Load<uint32_t>(data + 12);
  const uint32_t row_floats = Load<uint32_t>(data + 16);
  OptimizerKind kind;
  MTPS_RETURN_IF_ERROR(CheckRowFormat(dim, row_floats, Load<uint32_t>(data + 20), &kind));
  d.flags = Load<uint32_t>(data + 24);
  d.key0 = Load<uint32_t>(data + 28);
  LoadChain(data + kBaseAt, &d.base);
  LoadChain(data + kResultAt, &d.result);
  d.sweep_cursor = Load<uint64_t>(data + 176);
  d.lru_rng = Load<uint64_t>(data + 184);
  d.sketch_depth = Load<uint32_t>(data + 192);
  d.sketch_width_log2 = Load<uint32_t>(data + 196);
  d.sketch_seed = Load<uint64_t>(data + 200);
  d.sketch_block_log2 = Load<uint32_t>(data + 208);
  d.blocks = Load<uint64_t>(data + 216);
  d.changed = Load<uint64_t>(data + 224);
  d.moved = Load<uint64_t>(data + 232);
  d.emptied = Load<uint64_t>(data + 240);
  d.removed = Load<uint64_t>(data + 248);
  if (Load<uint32_t>(data + kBaseAt + 68) != 0 || Load<uint32_t>(data + kResultAt + 68) != 0 ||
      Load<uint32_t>(data + 212) != 0) {
    return Status::Corruption("reserved header field is not 0");
  }
  if ((d.flags & ~(kWholeLayout | kRemovedUnlisted)) != 0 ||
      ((d.flags & kRemovedUnlisted) != 0 && !d.whole())) {
    return Status::Corruption("unknown delta flags " + std::to_string(d.flags));
  }
  if (d.key0 > 2) return Status::Corruption("key 0 state " + std::to_string(d.key0));
  if (d.sketch_depth == 0
          ? (d.sketch_width_log2 != 0 || d.sketch_seed != 0 || d.sketch_block_log2 != 0)
          : (d.sketch_depth != static_cast<uint32_t>(CountMinSketch::kDepth) ||
             d.sketch_width_log2 < 4 || d.sketch_width_log2 > 30 ||
             d.sketch_block_log2 > d.sketch_width_log2 + 2)) {
    return Status::Corruption("admission sketch of depth " + std::to_string(d.sketch_depth) +
                              ", width 2^" + std::to_string(d.sketch_width_log2) +
                              " in blocks of 2^" + std::to_string(d.sketch_block_log2));
  }
  const uint64_t num_blocks =
      d.sketch_depth == 0
          ? 0
          : (uint64_t{d.sketch_depth} << d.sketch_width_log2) >> d.sketch_block_log2;
  if (d.blocks > num_blocks) {
    return Status::Corruption(std::to_string(d.blocks) + " sketch blocks of " +
                              std::to_string(num_blocks));
  }

  // The sections, each checked against what is left before it is used.
  if (size < kDeltaHeaderBytes + kChecksumBytes) {
    return Status::Corruption("truncated: " + std::to_string(size) +
                              " bytes, the header and the checksum take " +
                              std::to_string(kDeltaHeaderBytes + kChecksumBytes));
  }
  const char* at = data + kDeltaHeaderBytes;
  uint64_t left = size - kDeltaHeaderBytes - kChecksumBytes;
  auto section = [&](uint64_t count, uint64_t each, const char* what,
                     const char** start) -> Status {
    if (count > left / each) {
      return Status::Corruption("truncated: " + std::to_string(count) + " " + what +
                                " announced, " + std::to_string(left / each) + " present");
    }
    *start = at;
    at += count * each;
    left -= count * each;
    return Status::OK();
  };
  d.block_record = sizeof(uint32_t) + (size_t{2} << d.sketch_block_log2);
  d.changed_record = kChangedHeadBytes + size_t{row_floats} * sizeof(float);
  MTPS_RETURN_IF_ERROR(section(d.blocks, d.block_record, "sketch blocks", &d.block_data));
  MTPS_RETURN_IF_ERROR(section(d.changed, d.changed_record, "changed rows", &d.changed_data));
  MTPS_RETURN_IF_ERROR(section(d.moved, kMovedBytes, "moved rows", &d.moved_data));
  MTPS_RETURN_IF_ERROR(section(d.emptied, sizeof(uint64_t), "emptied buckets", &d.emptied_data));
  MTPS_RETURN_IF_ERROR(section(d.removed, sizeof(uint64_t), "removed keys", &d.removed_data));
  if (left != 0) {
    return Status::Corruption(std::to_string(left) + " stray bytes after the sections announced");
  }
  const uint64_t stored_sum = Load<uint64_t>(data + size - kChecksumBytes);
  const uint64_t actual_sum = SnapshotChecksum::Of(data, size - kChecksumBytes);
  if (stored_sum != actual_sum) {
    return Status::Corruption("checksum mismatch (stored " + std::to_string(stored_sum) +
                              ", computed " + std::to_string(actual_sum) + ")");
  }

  // The bytes are what a writer wrote; do they fit this table?
  if (static_cast<int>(dim) != dim_) {
    return Status::InvalidArgument("delta of dim " + std::to_string(dim) + ", this table's is " +
                                   std::to_string(dim_));
  }
  if (kind != kind_) {
    return Status::InvalidArgument(std::string("delta's optimizer is ") + KindName(kind) +
                                   ", this table's is " + KindName(kind_));
  }
  if (sketch_ != nullptr && d.sketch_depth != 0) {
    if (static_cast<int>(d.sketch_width_log2) != sketch_->width_log2()) {
      return Status::InvalidArgument("admission sketch of width 2^" +
                                     std::to_string(d.sketch_width_log2) + ", this table's is 2^" +
                                     std::to_string(sketch_->width_log2()));
    }
    if (d.sketch_seed != sketch_->hash_seed()) {
      return Status::InvalidArgument(
          "admission sketch hashed with seed " + std::to_string(d.sketch_seed) +
          ", this table's with " + std::to_string(sketch_->hash_seed()) + " (another table seed)");
    }
    if (static_cast<int>(d.sketch_block_log2) != sketch_->block_log2()) {
      return Status::InvalidArgument(
          "admission sketch in blocks of 2^" + std::to_string(d.sketch_block_log2) +
          " counters, this table's are of 2^" + std::to_string(sketch_->block_log2()));
    }
  }
  // Is it consistent?
  MTPS_RETURN_IF_ERROR(CheckChainFields(d.base, "base"));
  MTPS_RETURN_IF_ERROR(CheckChainFields(d.result, "result"));
  if (d.result.step < d.base.step) {
    return Status::Corruption("a delta from step " + std::to_string(d.base.step) +
                              " back to step " + std::to_string(d.result.step));
  }
  const uint64_t capacity = uint64_t{1} << d.result.capacity_log2;
  if (d.sweep_cursor >= capacity) {
    return Status::Corruption("index of 2^" + std::to_string(d.result.capacity_log2) +
                              " buckets with its sweep at " + std::to_string(d.sweep_cursor));
  }
  if (!d.whole() && d.result.capacity_log2 != d.base.capacity_log2) {
    return Status::Corruption("an in-place delta of an index resized from 2^" +
                              std::to_string(d.base.capacity_log2) + " to 2^" +
                              std::to_string(d.result.capacity_log2) + " buckets");
  }
  if (d.whole() && d.emptied != 0) {
    return Status::Corruption("a whole-layout delta with emptied buckets");
  }
  if ((d.flags & kRemovedUnlisted) != 0 && d.removed != 0) {
    return Status::Corruption("removed keys in a delta that does not list them");
  }
  if (d.key0 == 2 &&
      (d.changed == 0 || d.changed_key(0) != kEmptyKey || d.changed_pos(0) != kNoBucket)) {
    return Status::Corruption("key 0's changed row is not the first");
  }
  if (d.whole() && d.result.rows != d.changed + d.moved + (d.key0 == 1 ? 1 : 0)) {
    return Status::Corruption("a whole-layout delta of " + std::to_string(d.result.rows) +
                              " rows lists " +
                              std::to_string(d.changed + d.moved + (d.key0 == 1 ? 1 : 0)));
  }
  // Buckets: within the index, each list ascending, the lists disjoint.
  size_t c = d.first_changed(), m = 0, e = 0;
  uint64_t last = 0;
  bool first = true;
  while (c < d.changed || m < d.moved || e < d.emptied) {
    const uint64_t pc = c < d.changed ? d.changed_pos(c) : kNoBucket;
    const uint64_t pm = m < d.moved ? d.moved_pos(m) : kNoBucket;
    const uint64_t pe = e < d.emptied ? d.emptied_pos(e) : kNoBucket;
    const uint64_t pos = std::min(pc, std::min(pm, pe));
    if (pos >= capacity) {
      return Status::Corruption("bucket " + std::to_string(pos) + " of an index of 2^" +
                                std::to_string(d.result.capacity_log2));
    }
    if (!first && pos <= last) {
      return Status::Corruption("bucket " + std::to_string(pos) + " listed twice or out of order");
    }
    if (pos == pc) {
      if (d.changed_key(c) == kEmptyKey) return Status::Corruption("key 0 in a bucket");
      ++c;
    } else if (pos == pm) {
      if (d.moved_key(m) == kEmptyKey) return Status::Corruption("key 0 in a bucket");
      ++m;
    } else {
      ++e;
    }
    last = pos;
    first = false;
  }
  for (size_t i = 1; i < d.removed; ++i) {
    if (d.removed_key(i) <= d.removed_key(i - 1)) {
      return Status::Corruption("removed keys out of order");
    }
  }
  if (d.key0 != 0 && d.IsRemoved(kEmptyKey)) {
    return Status::Corruption("key 0 both kept and removed");
  }
  for (size_t b = 0; b < d.blocks; ++b) {
    const uint32_t number = Load<uint32_t>(d.block_data + b * d.block_record);
    if (number >= num_blocks) {
      return Status::Corruption("sketch block " + std::to_string(number) + " of " +
                                std::to_string(num_blocks));
    }
  }

  // And is this table its base?
  const ChainState now = CurrentChain();
  if (d.base.step != now.step) {
    return Status::InvalidArgument("chained to step " + std::to_string(d.base.step) +
                                   ", the table is at step " + std::to_string(now.step));
  }
  if (d.base.rows != now.rows) {
    return Status::InvalidArgument("chained to a table of " + std::to_string(d.base.rows) +
                                   " rows at step " + std::to_string(d.base.step) +
                                   ", the table has " + std::to_string(now.rows));
  }
  if (d.base.counters.admitted != now.counters.admitted ||
      d.base.counters.rejected != now.counters.rejected ||
      d.base.counters.evicted != now.counters.evicted) {
    return Status::InvalidArgument(
        "chained to a table with counters admitted " + std::to_string(d.base.counters.admitted) +
        ", rejected " + std::to_string(d.base.counters.rejected) + ", evicted " +
        std::to_string(d.base.counters.evicted) + " at step " + std::to_string(d.base.step) +
        ", the table's are " + std::to_string(now.counters.admitted) + ", " +
        std::to_string(now.counters.rejected) + ", " + std::to_string(now.counters.evicted));
  }
  if (d.base.key_sum != now.key_sum || d.base.stamp_sum != now.stamp_sum) {
    return Status::InvalidArgument("chained to another table state at step " +
                                   std::to_string(d.base.step) + " (same rows and counters, but " +
                                   (d.base.key_sum != now.key_sum ? "other keys" : "other stamps") +
                                   ")");
  }
  return Status::OK();
}

SparseTable::Bucket* SparseTable::InsertForLoad(uint64_t key, uint32_t stamp) {
  if (occupied_ + 1 > grow_at_) Rehash(capacity_ * 2, /*sweep=*/false);
  const uint64_t h = Mix64(key);
  size_t i = h & mask_;
  while (buckets_[i].key != kEmptyKey) i = (i + 1) & mask_;
  buckets_[i] = Bucket{key, AllocRow(), stamp};
  ++occupied_;
  ++num_rows_;
  key_sum_ += h;
  stamp_sum_ += stamp;
  layout_sum_ += h * (2 * i + 1);
  return &buckets_[i];
}

Status SparseTable::ApplyInPlace(const DeltaView& d) {
  // The index has the base's layout: the delta's buckets are the only ones
  // whose content differs. A changed row still in its bucket is overwritten
  // there; the other buckets' rows are taken out, then the new ones put in.
  struct Displaced {
    uint64_t key;
    uint32_t row;
    uint32_t stamp;
    bool kept;
  };
  std::vector<Displaced> displaced;
  auto take_out = [&](uint64_t pos) {
    Bucket& b = buckets_[pos];
    if (b.key == kEmptyKey) return;
    const uint64_t h = Mix64(b.key);
    displaced.push_back(Displaced{b.key, b.row, b.step, false});
    key_sum_ -= h;
    stamp_sum_ -= b.step;
    layout_sum_ -= h * (2 * pos + 1);
    --occupied_;
    --num_rows_;
    b = Bucket{kEmptyKey, 0, 0};
  };
  const size_t row_bytes = row_floats_ * sizeof(float);
  // The changed rows updated in place (most of them, usually); the others
  // are listed in `put_back`.
  std::vector<size_t> put_back;
  constexpr size_t kAhead = 16;
  for (size_t i = d.first_changed(); i < d.changed; ++i) {
    if (i + kAhead < d.changed) __builtin_prefetch(&buckets_[d.changed_pos(i + kAhead)]);
    if (i + kAhead / 4 < d.changed) {
      const Bucket& ahead = buckets_[d.changed_pos(i + kAhead / 4)];
      if (ahead.key != kEmptyKey) __builtin_prefetch(RowPtr(ahead.row));
    }
    const uint64_t pos = d.changed_pos(i);
    Bucket& b = buckets_[pos];
    if (b.key == d.changed_key(i)) {
      const uint32_t stamp = d.changed_stamp(i);
      stamp_sum_ += uint64_t{stamp} - b.step;
      b.step = stamp;
      std::memcpy(RowPtr(b.row), d.changed_row(i), row_bytes);
    } else {
      take_out(pos);
      put_back.push_back(i);
    }
  }
  for (size_t i = 0; i < d.moved; ++i) take_out(d.moved_pos(i));
  for (size_t i = 0; i < d.emptied; ++i) take_out(d.emptied_pos(i));
  std::sort(displaced.begin(), displaced.end(),
            [](const Displaced& a, const Displaced& b) { return a.key < b.key; });
  auto reclaim = [&](uint64_t key) -> Displaced* {
    auto it = std::lower_bound(displaced.begin(), displaced.end(), key,
                               [](const Displaced& a, uint64_t k) { return a.key < k; });
    if (it == displaced.end() || it->key != key || it->kept) return nullptr;
    it->kept = true;
    return &*it;
  };
  auto put = [&](uint64_t pos, uint64_t key, uint32_t row, uint32_t stamp) {
    buckets_[pos] = Bucket{key, row, stamp};
    const uint64_t h = Mix64(key);
    key_sum_ += h;
    stamp_sum_ += stamp;
    layout_sum_ += h * (2 * pos + 1);
    ++occupied_;
    ++num_rows_;
  };
  for (size_t i : put_back) {
    const uint64_t key = d.changed_key(i);
    const Displaced* x = reclaim(key);
    const uint32_t row = x != nullptr ? x->row : AllocRow();
    std::memcpy(RowPtr(row), d.changed_row(i), row_bytes);
    put(d.changed_pos(i), key, row, d.changed_stamp(i));
  }
  for (size_t i = 0; i < d.moved; ++i) {
    const uint64_t key = d.moved_key(i);
    const Displaced* x = reclaim(key);
    if (x == nullptr) {
      return Status::Corruption("moved key " + std::to_string(key) +
                                " is in none of the delta's buckets of the base");
    }
    put(d.moved_pos(i), key, x->row, x->stamp);
  }
  for (const Displaced& x : displaced) {
    if (x.kept) continue;
    if (d.removed_listed() && !d.IsRemoved(x.key)) {
      return Status::Corruption("key " + std::to_string(x.key) +
                                " of the base is neither kept nor listed as removed");
    }
    free_rows_.push_back(x.row);
  }
  // The result must be a valid index: room left, every listed key found in
  // its bucket, no probe run cut by an emptied bucket, removed keys gone.
  if (occupied_ > grow_at_) {
    return Status::Corruption(std::to_string(occupied_) + " buckets used of " +
                              std::to_string(capacity_));
  }
  auto found_at = [&](uint64_t key, uint64_t pos) {
    const Bucket* b = Find(key);
    return b == &buckets_[pos];
  };
  for (size_t i : put_back) {  // (the rows updated in place did not move)
    if (!found_at(d.changed_key(i), d.changed_pos(i))) {
      return Status::Corruption("key " + std::to_string(d.changed_key(i)) + " in bucket " +
                                std::to_string(d.changed_pos(i)) + " is not reachable there");
    }
  }
  for (size_t i = 0; i < d.moved; ++i) {
    if (!found_at(d.moved_key(i), d.moved_pos(i))) {
      return Status::Corruption("key " + std::to_string(d.moved_key(i)) + " in bucket " +
                                std::to_string(d.moved_pos(i)) + " is not reachable there");
    }
  }
  for (size_t i = 0; i < d.emptied; ++i) {
    const size_t hole = static_cast<size_t>(d.emptied_pos(i));
    for (size_t j = (hole + 1) & mask_; buckets_[j].key != kEmptyKey; j = (j + 1) & mask_) {
      const size_t home = Mix64(buckets_[j].key) & mask_;
      if (((j - home) & mask_) >= ((j - hole) & mask_)) {
        return Status::Corruption("emptied bucket " + std::to_string(hole) + " cuts key " +
                                  std::to_string(buckets_[j].key) + "'s probe run");
      }
    }
  }
  for (size_t i = 0; i < d.removed; ++i) {
    const uint64_t key = d.removed_key(i);
    if (key != kEmptyKey && Find(key) != nullptr) {
      return Status::Corruption("removed key " + std::to_string(key) + " is still there");
    }
  }
  return Status::OK();
}

Status SparseTable::ApplyWholeLayout(const DeltaView& d, bool* same_layout) {
  // Every row's bucket is listed: build the new index beside the old one,
  // taking the rows of the listed keys out of the old index (a row taken is
  // marked kNoRow there), then free the rows left.
  const size_t n = static_cast<size_t>(d.changed - d.first_changed() + d.moved);
  size_t needed = kMinCapacity;
  while (GrowAt(needed) < n) needed <<= 1;
  const size_t hint = size_t{1} << d.result.capacity_log2;
  // A hint far beyond what the rows need is not allocated (as in Restore).
  const bool at_pos = hint >= needed && hint <= kMaxCapacityHint * needed;
  const size_t capacity = at_pos ? hint : needed;
  const size_t mask = capacity - 1;
  void* mem = AllocZeroedIndex(capacity * sizeof(Bucket));
  std::unique_ptr<Bucket[], FreeDeleter> fresh(static_cast<Bucket*>(mem));
  auto place = [&](uint64_t key, uint64_t pos, uint32_t row, uint32_t stamp) -> Status {
    size_t j;
    if (at_pos) {
      j = static_cast<size_t>(pos);  // < hint, and distinct (checked)
    } else {
      j = Mix64(key) & mask;
      while (fresh[j].key != kEmptyKey) {
        if (fresh[j].key == key) {
          return Status::Corruption("key " + std::to_string(key) + " listed twice");
        }
        j = (j + 1) & mask;
      }
    }
    fresh[j] = Bucket{key, row, stamp};
    return Status::OK();
  };
  const size_t row_bytes = row_floats_ * sizeof(float);
  for (size_t i = d.first_changed(); i < d.changed; ++i) {
    const uint64_t key = d.changed_key(i);
    Bucket* old = Find(key);
    uint32_t row;
    if (old != nullptr) {
      if (old->row == kNoRow) {
        return Status::Corruption("key " + std::to_string(key) + " listed twice");
      }
      row = old->row;
      old->row = kNoRow;
    } else {
      row = AllocRow();
    }
    std::memcpy(RowPtr(row), d.changed_row(i), row_bytes);
    MTPS_RETURN_IF_ERROR(place(key, d.changed_pos(i), row, d.changed_stamp(i)));
  }
  for (size_t i = 0; i < d.moved; ++i) {
    const uint64_t key = d.moved_key(i);
    Bucket* old = Find(key);
    if (old == nullptr || old->row == kNoRow) {
      return Status::Corruption("unchanged key " + std::to_string(key) +
                                (old == nullptr ? " is not in the table" : " listed twice"));
    }
    MTPS_RETURN_IF_ERROR(place(key, d.moved_pos(i), old->row, old->step));
    old->row = kNoRow;
  }
  // The rows of the old index not taken are the removed ones.
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey || b.row == kNoRow) continue;
    if (d.removed_listed() && !d.IsRemoved(b.key)) {
      return Status::Corruption("key " + std::to_string(b.key) +
                                " of the base is neither listed nor removed");
    }
    free_rows_.push_back(b.row);
  }
  buckets_ = std::move(fresh);
  capacity_ = capacity;
  mask_ = mask;
  occupied_ = n;
  grow_at_ = GrowAt(capacity);
  sweep_cursor_ = 0;
  if (evict_after_steps_ > 0) {
    const size_t period = std::max<size_t>(1, evict_after_steps_ / 4);
    sweep_budget_ = (capacity_ + period - 1) / period;
  }
  num_rows_ = n + (has_empty_key_ ? 1 : 0);
  key_sum_ = has_empty_key_ ? Mix64(kEmptyKey) : 0;
  stamp_sum_ = has_empty_key_ ? empty_key_bucket_.step : 0;
  layout_sum_ = 0;
  for (size_t i = 0; i < capacity_; ++i) {
    const Bucket& b = buckets_[i];
    if (b.key == kEmptyKey) continue;
    const uint64_t h = Mix64(b.key);
    key_sum_ += h;
    stamp_sum_ += b.step;
    layout_sum_ += h * (2 * i + 1);
  }
  if (at_pos) {
    if (n > grow_at_) {
      return Status::Corruption(std::to_string(n) + " rows in an index of " +
                                std::to_string(capacity_) + " buckets");
    }
    for (size_t i = d.first_changed(); i < d.changed; ++i) {
      if (Find(d.changed_key(i)) != &buckets_[d.changed_pos(i)]) {
        return Status::Corruption("key " + std::to_string(d.changed_key(i)) + " in bucket " +
                                  std::to_string(d.changed_pos(i)) + " is not reachable there");
      }
    }
    for (size_t i = 0; i < d.moved; ++i) {
      if (Find(d.moved_key(i)) != &buckets_[d.moved_pos(i)]) {
        return Status::Corruption("key " + std::to_string(d.moved_key(i)) + " in bucket " +
                                  std::to_string(d.moved_pos(i)) + " is not reachable there");
      }
    }
  }
  *same_layout = at_pos;
  return Status::OK();
}

Status SparseTable::ApplyByKey(const DeltaView& d) {
  // Another layout than the base's: removals and changed rows by key; the
  // moved rows are unchanged and must be there.
  for (size_t i = 0; i < d.removed; ++i) {
    const uint64_t key = d.removed_key(i);
    if (key == kEmptyKey) continue;  // ApplyKeyZero
    if (Bucket* b = Find(key)) EraseAt(static_cast<size_t>(b - buckets_.get()));
  }
  const size_t row_bytes = row_floats_ * sizeof(float);
  for (size_t i = d.first_changed(); i < d.changed; ++i) {
    const uint64_t key = d.changed_key(i);
    const uint32_t stamp = d.changed_stamp(i);
    Bucket* b = Find(key);
    if (b != nullptr) {
      stamp_sum_ += uint64_t{stamp} - b->step;
      b->step = stamp;
    } else {
      b = InsertForLoad(key, stamp);
    }
    std::memcpy(RowPtr(b->row), d.changed_row(i), row_bytes);
  }
  for (size_t i = 0; i < d.moved; ++i) {
    if (Find(d.moved_key(i)) == nullptr) {
      return Status::Corruption("unchanged key " + std::to_string(d.moved_key(i)) +
                                " is not in the table");
    }
  }
  // The index sized as Restore would size it for these rows.
  size_t needed = kMinCapacity;
  while (GrowAt(needed) < occupied_) needed <<= 1;
  const size_t hint = size_t{1} << d.result.capacity_log2;
  size_t target = capacity_;
  if (hint >= needed && hint <= kMaxCapacityHint * needed) {
    target = hint;
  } else if (capacity_ < needed || capacity_ > kMaxCapacityHint * needed) {
    target = needed;
  }
  if (target != capacity_) Rehash(target, /*sweep=*/false);
  return Status::OK();
}

Status SparseTable::ApplyKeyZero(const DeltaView& d) {
  if (d.key0 == 2) {
    const uint32_t stamp = d.changed_stamp(0);
    if (has_empty_key_) {
      stamp_sum_ += uint64_t{stamp} - empty_key_bucket_.step;
      empty_key_bucket_.step = stamp;
    } else {
      has_empty_key_ = true;
      empty_key_bucket_ = Bucket{kEmptyKey, AllocRow(), stamp};
      ++num_rows_;
      key_sum_ += Mix64(kEmptyKey);
      stamp_sum_ += stamp;
    }
    std::memcpy(RowPtr(empty_key_bucket_.row), d.changed_row(0), row_floats_ * sizeof(float));
  } else if (d.key0 == 1) {
    if (!has_empty_key_) return Status::Corruption("key 0 is kept but the table has none");
  } else if (has_empty_key_) {
    if (d.removed_listed() && !d.IsRemoved(kEmptyKey)) {
      return Status::Corruption("key 0 of the base is neither kept nor listed as removed");
    }
    free_rows_.push_back(empty_key_bucket_.row);
    --num_rows_;
    key_sum_ -= Mix64(kEmptyKey);
    stamp_sum_ -= empty_key_bucket_.step;
    has_empty_key_ = false;
    empty_key_bucket_ = Bucket{kEmptyKey, kNoRow, 0};
  }
  return Status::OK();
}

Status SparseTable::FinishApply(const DeltaView& d, bool same_layout) {
  step_ = d.result.step;
  counters_ = d.result.counters;
  lru_rng_ = d.lru_rng != 0 ? d.lru_rng : InitialLruState(seed_);
  if (same_layout) sweep_cursor_ = static_cast<size_t>(d.sweep_cursor);
  if (sketch_ != nullptr) {
    for (size_t b = 0; b < d.blocks; ++b) {
      const char* rec = d.block_data + b * d.block_record;
      sketch_->SetBlock(Load<uint32_t>(rec), rec + sizeof(uint32_t));
    }
  }
  // Does the result check out?
  if (num_rows_ != d.result.rows) {
    return Status::Corruption(
        "the delta does not reproduce its table: " + std::to_string(num_rows_) + " rows, it had " +
        std::to_string(d.result.rows));
  }
  if (key_sum_ != d.result.key_sum || stamp_sum_ != d.result.stamp_sum) {
    return Status::Corruption(std::string("the delta does not reproduce its table: other ") +
                              (key_sum_ != d.result.key_sum ? "keys" : "stamps"));
  }
  if (same_layout &&
      (layout_sum_ != d.result.layout_sum || capacity_ != (size_t{1} << d.result.capacity_log2))) {
    return Status::Corruption("the delta does not reproduce its table's index layout");
  }
  TrimToRowCap();
  return Status::OK();
}

void SparseTable::TrimToRowCap() {
  if (max_rows_ == 0 || num_rows_ <= max_rows_) return;
  // Keep the max_rows_ most recently updated, as Restore does.
  std::vector<uint32_t> ages;
  ages.reserve(num_rows_);
  if (has_empty_key_) ages.push_back(Age(empty_key_bucket_.step));
  for (size_t i = 0; i < capacity_; ++i) {
    if (buckets_[i].key != kEmptyKey) ages.push_back(Age(buckets_[i].step));
  }
  std::nth_element(ages.begin(), ages.begin() + (max_rows_ - 1), ages.end());
  const uint32_t cut_age = ages[max_rows_ - 1];
  size_t ties_left =
      max_rows_ - static_cast<size_t>(std::count_if(ages.begin(), ages.end(),
                                                    [cut_age](uint32_t a) { return a < cut_age; }));
  auto drop = [&](uint32_t stamp) {
    const uint32_t age = Age(stamp);
    if (age > cut_age || (age == cut_age && ties_left == 0)) return true;
    if (age == cut_age) --ties_left;
    return false;
  };
  std::vector<uint64_t> victims;
  bool drop_key0 = has_empty_key_ && drop(empty_key_bucket_.step);
  for (size_t i = 0; i < capacity_; ++i) {
    if (buckets_[i].key != kEmptyKey && drop(buckets_[i].step)) victims.push_back(buckets_[i].key);
  }
  if (drop_key0) {
    EraseEmptyKey();
    ++counters_.evicted;
  }
  for (uint64_t key : victims) {
    if (Bucket* b = Find(key)) {
      EraseAt(static_cast<size_t>(b - buckets_.get()));
      ++counters_.evicted;
    }
  }
  size_t target = capacity_;
  while (target > kMinCapacity && occupied_ < target / kShrinkDen) target >>= 1;
  if (target < capacity_) Rehash(target, /*sweep=*/false);
}

Status SparseTable::ApplyDelta(const char* data, size_t size, const std::string& where) {
  DeltaView d;
  Status status = CheckDelta(data, size, &d);
  if (!status.ok()) return Status(status.code(), where + ": " + status.message());
  bool same_layout = false;
  if (d.whole()) {
    status = ApplyWholeLayout(d, &same_layout);
  } else if (capacity_ == (size_t{1} << d.base.capacity_log2) && layout_sum_ == d.base.layout_sum) {
    status = ApplyInPlace(d);
    same_layout = true;
  } else {
    status = ApplyByKey(d);
  }
  if (status.ok()) status = ApplyKeyZero(d);
  if (status.ok()) status = FinishApply(d, same_layout);
  if (!status.ok()) Clear();
  StartDelta();
  if (status.ok()) return status;
  return Status(status.code(), where + ": " + status.message());
}

// ---------------------------------------------------------------------------
// SnapshotChecksum

void SnapshotChecksum::Block(const char* p) {
  for (int k = 0; k < 4; ++k) lane_[k] = ChecksumRound(lane_[k], Load<uint64_t>(p + 8 * k));
}

void SnapshotChecksum::Update(const char* data, size_t size) {
  length_ += size;
  if (tail_size_ > 0) {
    const size_t take = std::min(size, sizeof(tail_) - tail_size_);
    std::memcpy(tail_ + tail_size_, data, take);
    tail_size_ += take;
    data += take;
    size -= take;
    if (tail_size_ < sizeof(tail_)) return;
    Block(tail_);
    tail_size_ = 0;
  }
  for (; size >= sizeof(tail_); data += sizeof(tail_), size -= sizeof(tail_)) Block(data);
  if (size > 0) {
    std::memcpy(tail_, data, size);
    tail_size_ = size;
  }
}

uint64_t SnapshotChecksum::Digest() const {
  uint64_t h = Rotl(lane_[0], 1) + Rotl(lane_[1], 7) + Rotl(lane_[2], 12) + Rotl(lane_[3], 18);
  size_t i = 0;
  for (; i + 8 <= tail_size_; i += 8) h = Mix64(h ^ ChecksumRound(0, Load<uint64_t>(tail_ + i)));
  if (i < tail_size_) {
    uint64_t word = 0;
    std::memcpy(&word, tail_ + i, tail_size_ - i);
    h = Mix64(h ^ ChecksumRound(0, word));
  }
  return Mix64(h ^ length_);
}

uint64_t SnapshotChecksum::Of(const char* data, size_t size) {
  SnapshotChecksum c;
  c.Update(data, size);
  return c.Digest();
}

}  // namespace mtps
