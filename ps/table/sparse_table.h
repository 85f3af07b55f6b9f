// SparseTable: one server shard's sparse embedding rows and their optimizer
// state, with feature admission, eviction by age, a row cap, and memory
// accounting.
//
// Row layout. A table has two parts:
//  * The index: an open-addressing hash table with linear probing over a
//    power-of-two array of 16-byte buckets {key, row, step}, doubled when it
//    would become more than 7/10 full and halved when it falls below 1/8. A
//    bucket whose key is kEmptyKey (0) is free; the real key 0 is kept in a
//    bucket beside the array, so every 64-bit value is a valid key. A key's
//    home bucket is Mix64(key) & mask: keys reach a server already
//    partitioned by their bits, so the table re-mixes them instead of trusting
//    the low bits. `step` is the table step (Push count, low 32 bits) of the
//    row's last update, kept in the bucket so that stamping it costs no extra
//    cache line. Deletion is backward-shift deletion (no tombstones): the
//    bucket is emptied and later members of its probe run that may live there
//    move back, so every remaining key stays reachable from its home bucket.
//  * The arena: rows live in fixed-size chunks (a power of two of rows, at
//    least 2 MiB, 2 MiB aligned and advised MADV_HUGEPAGE so the row
//    accesses of a big table do not thrash the TLB). Row r is row_floats()
//    contiguous floats: the embedding followed by its optimizer's state,
//        SGD      [ w_0 .. w_{d-1} ]                                  d floats
//        Adagrad  [ w | acc ]                                        2d floats
//        Adam     [ w | m | v | t ]   t: uint32 step count (bits)  3d+1 floats
//        FTRL     [ w | z | n ]       w recomputed from z, n        3d floats
//    so a Push touches one contiguous span. Chunks never move: growth never
//    copies rows. Freed rows (evicted or erased) go on a free list and are
//    reused by the next insertions before the arena grows; the arena itself
//    never shrinks (its size is the high-water mark of live rows).
//
// Admission (admission_min_count K > 1): a missing key gets a row only at its
// K-th push, counted in a CountMinSketch; before that a Pull answers its
// initial value without inserting (even with create_missing) and a Push only
// counts it. The sketch never decays: a key once counted K times (or evicted
// after admission) is admitted at its next push.
//
// Eviction by age (evict_after_steps T > 0): each Push call is one step; a row
// whose last update (or creation) is T or more steps old is dropped. Each Push
// scans the next ceil(capacity / P) buckets of the index after its updates,
// P = max(1, T/4), so the index is swept once every P steps (every step for
// T < 4) at a cost of about 4 * capacity / T sequential bucket reads per push
// (16 bytes each); a resize of the index sweeps it whole while rebuilding.
// So a row last updated at step s is dropped at the end of a push in
// [s + T, s + T + P - 1], unless a row-cap eviction's backward shift moves
// its bucket behind the sweep (one more period at most).
//
// Row cap (max_rows > 0): inserting a row into a full table first evicts an
// approximately least recently updated row: the oldest of a sample of
// kLruSample occupied buckets read from a random position on (plus key 0's
// row), Redis-style. A row among the youngest fraction f of the table is
// chosen only when the whole sample is that young (probability f^16).
//
// Limits: at most 2^32 - 2 rows per table (rows are 32-bit in the index;
// beyond it insertion throws std::length_error, like running out of memory);
// steps are compared modulo 2^32, so T < 2^31, and without T the row cap's
// LRU order misjudges rows untouched for more than 2^32 pushes.
//
// Snapshots (checkpoints): Snapshot copies the table at about memcpy speed
// into a SparseTableSnapshot that any thread may then serialize with
// WriteSparseSnapshot while the owner goes on; Restore loads those bytes
// into a table of the same dim and optimizer kind. A restored table continues
// exactly as the original would have: same rows, optimizer state and
// last-update stamps, step, counters and admission counts, and (when its index
// gets the snapshot's capacity, see Restore) the same bucket layout, sweep
// position and row-cap sampler, so later pushes evict the same rows at the
// same steps.
//
// Incremental snapshots (Check-N-Run style): StartDelta begins a delta
// period; DeltaSnapshot copies only what changed since (the changed rows, the
// removed keys, the buckets that moved, the dirty blocks of the admission
// sketch, and the table-wide state), and ApplyDelta applies those bytes to a
// table at the delta's base. Restore(full) then ApplyDelta(delta_1) ...
// ApplyDelta(delta_k) gives the table the original had at delta_k: same rows,
// optimizer state, stamps, step, counters and sketch, and the same bucket
// layout, sweep position and sampler, so it goes on bit-identically, evictions
// included. (When the applying table's index does not have the base's layout,
// e.g. Restore did not keep the snapshot's capacity, the delta is applied by
// key: same content, a layout of its own, as after such a Restore.)
// How changes are found: a row changed in the period iff its stamp is in
// (base step, step] modulo 2^32, except rows created by a Pull while the step
// still equals the base step, which the table lists; removals and the bucket
// positions rewritten by backward shifts are listed too; a resize of the
// index in the period makes the delta list every row's bucket (the changed
// ones with their row, the others as 16-byte key + position records). The
// lists are bounded (about capacity/4 entries each); past that a delta lists
// every row's bucket likewise. Bookkeeping costs: Push none beyond one add per
// key (a stamp digest), insertions and removals an add or two and a vector
// append. A period of 2^32 steps or more makes every row changed.
//
// Thread-safety: none. A SparseTable is owned by one server thread (the single
// writer of its key partition) and must not be touched by any other thread;
// it takes no locks. Even Pull mutates (it may insert).
#ifndef MTPS_PS_TABLE_SPARSE_TABLE_H_
#define MTPS_PS_TABLE_SPARSE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "ps/table/count_min_sketch.h"

namespace mtps {

struct SparseTableOptions {
  int dim = 8;
  float init_scale = 0.01f;  // new rows uniform in [-init_scale, init_scale]
  uint64_t seed = 1;  // with the key, determines a row's initial value (order/shard independent)
  // proto/config.proto; no kind set means Adagrad with its defaults.
  config::SparseOptimizer optimizer;
  // Admission, eviction and row cap, as in config::ServerConfig (0: off).
  int admission_min_count = 0;
  int64_t evict_after_steps = 0;
  int64_t max_rows = 0;
  // Width of the admission sketch, log2 (tests make it small to force
  // collisions); 20 gives 4 x 2^20 16-bit counters = 8 MiB.
  int admission_sketch_width_log2 = 20;
};

// Checks options that come from a config, naming every offending field
// ("sparse table: adam.beta1: must be in [0, 1)"): dim > 0; the rules of
// ps/table/table_config.h (CheckInitScale, CheckSparseOptimizer,
// CheckSparseTableLimits, which the config check of the same fields runs
// too); sketch width log2 in [4, 30]. The SparseTable constructor CHECKs the
// same conditions, so call this first on anything read from outside.
Status ValidateSparseTableOptions(const SparseTableOptions& options);

// The initial value of element j of key's row: deterministic function of
// (seed, key, j), uniform in [-scale, scale]; used by Pull and exposed for tests.
float InitialValue(uint64_t seed, uint64_t key, int j, float scale);

// Where a table's bytes go (SparseTable::memory_report).
struct MemoryReport {
  size_t rows = 0;           // live rows
  size_t index_bytes = 0;    // bucket array
  size_t arena_bytes = 0;    // row chunks allocated (live rows, free rows, unused tail)
  size_t other_bytes = 0;    // admission sketch, free list, chunk table
  size_t total_bytes = 0;    // sum of the above == SparseTable::memory_bytes()
  size_t raw_row_bytes = 0;  // key + embedding + optimizer state of one row
  double bytes_per_row = 0;  // total_bytes / rows (0 when empty)
};

class SparseTableSnapshot;

class SparseTable {
 public:
  enum class OptimizerKind { kSgd, kAdagrad, kAdam, kFtrl };

  // Counts since construction. Every insertion is `admitted`, so
  // size() == admitted - evicted - (rows removed with Erase).
  struct Counters {
    int64_t admitted = 0;  // rows created
    int64_t rejected = 0;  // pushed key occurrences that only counted (admission)
    int64_t evicted = 0;   // rows dropped by age or by the row cap
  };

  // options must satisfy ValidateSparseTableOptions (CHECKed).
  explicit SparseTable(const SparseTableOptions& options);
  SparseTable(const SparseTable&) = delete;
  SparseTable& operator=(const SparseTable&) = delete;
  SparseTable(SparseTable&&) = default;
  SparseTable& operator=(SparseTable&&) = default;
  ~SparseTable() = default;

  int dim() const { return dim_; }
  OptimizerKind optimizer_kind() const { return kind_; }
  // Floats per arena row (embedding + optimizer state, see the layout above).
  size_t row_floats() const { return row_floats_; }

  // Copies the rows of keys[0..n) into out[0..n*dim). A missing key is
  // inserted first when create_missing and admission is off, otherwise
  // answered with its initial value and not inserted.
  void Pull(const uint64_t* keys, size_t n, bool create_missing, float* out) {
    PullSelected(keys, nullptr, n, create_missing, out);
  }
  // Pull of the keys at positions sel[0..m) of keys[] only: key keys[sel[i]]
  // fills out[sel[i]*dim ..). sel == nullptr means positions 0..m-1. A server
  // shard thread uses it to serve its share of a request in place.
  void PullSelected(const uint64_t* keys, const uint32_t* sel, size_t m, bool create_missing,
                    float* out);

  // One step: applies the optimizer for each key with grads[i*dim ..
  // (i+1)*dim), then sweeps for expired rows. A missing key is inserted first
  // (once admitted). A key repeated in one call is applied (or counted) once
  // per occurrence, in order.
  void Push(const uint64_t* keys, size_t n, const float* grads) {
    PushSelected(keys, nullptr, n, grads);
  }
  // One step applying only the keys at positions sel[0..m) of keys[] (their
  // gradients at grads[sel[i]*dim ..)); sel == nullptr means 0..m-1. An empty
  // selection is still a step (every shard of a server counts every push).
  void PushSelected(const uint64_t* keys, const uint32_t* sel, size_t m, const float* grads);

  // Calls fn(key, embedding) for every row, in index order (key 0 last);
  // `embedding` points at the row's dim() floats, valid during the call.
  // Changes nothing (no stamps, no steps): for exports of a restored table
  // (ps/offline/model_checkpoint.h).
  void ForEachRow(const std::function<void(uint64_t key, const float* embedding)>& fn) const;

  // Removes key's row; false if it had none. Not counted as evicted.
  bool Erase(uint64_t key);
  bool Contains(uint64_t key) const { return Find(key) != nullptr; }

  // Grows the index so that `rows` rows fit without another rehash.
  void Reserve(size_t rows);

  size_t size() const { return num_rows_; }  // rows
  // Whether a Pull (or, `push`, a Push) of at most n keys is sure to do no
  // work over the whole table: no index growth or shrink, no compaction of
  // the delta lists. Its cost is then bounded by n.
  bool BoundedFor(size_t n, bool push) const {
    if (push && evict_after_steps_ > 0) return false;  // a push's sweep may shrink the index
    const size_t limit = DeltaListLimit();
    // A key adds at most one bucket, and (with room to spare) two entries
    // to each delta list.
    return occupied_ + n <= grow_at_ && removed_.size() + 2 * n <= limit &&
           dirty_pos_.size() + 2 * n <= limit && created_at_base_.size() + 2 * n <= limit;
  }
  int64_t steps() const { return static_cast<int64_t>(step_); }  // Push calls so far
  const Counters& counters() const { return counters_; }
  // The admission sketch (nullptr when admission is off); for tests.
  const CountMinSketch* admission_sketch() const { return sketch_.get(); }

  // Index + arena + sketch + bookkeeping actually allocated, in bytes.
  size_t memory_bytes() const;
  MemoryReport memory_report() const;

  // See SparseTableSnapshot. Cost: one copy of the index and of the arena
  // (measured 15 ms for 1M rows of dim 8 with Adagrad, 98 MB).
  SparseTableSnapshot Snapshot() const;
  // Replaces this table's content with a serialized snapshot
  // (WriteSparseSnapshot's bytes): rows with their optimizer state and
  // last-update step stamps, the table step, counters, admission sketch
  // counts, and the index layout, sweep position and row-cap sampler state.
  // The snapshot's dim and optimizer kind must equal this table's
  // (InvalidArgument otherwise), and so must its admission sketch's width and
  // seed when both have a sketch (a snapshot without one leaves the sketch
  // empty; a table without one ignores the counts). Malformed, truncated or
  // checksum-failing input is Corruption. Every error message starts with
  // `where` (e.g. a file name) and says why, e.g. "ckpt/server-0.shard-1:
  // truncated: 1200 rows announced, 17 present"; the table is then left empty
  // (but valid). Nothing in the input can crash it, and it allocates only
  // for rows present in the input (an arena and an index as for a table of
  // that many rows; the index at most 8 times larger, see below).
  // The index gets the snapshot's capacity unless the rows need more or it is
  // over 8 times what they need (a Reserve ahead of the rows; the layout then
  // differs, the sweep timing only within its documented bounds); a Reserve
  // made before Restore is not kept. With a row cap smaller than the
  // snapshot's rows, only the most recently updated max_rows rows are loaded
  // (the others count as evicted). Rows already older than evict_after_steps
  // stay until the sweep reaches them, as they would have in the original.
  // Restore also starts a delta period (the restored state is its base),
  // after success or failure.
  Status Restore(const char* data, size_t size, const std::string& where);

  // Starts a new delta period: from now on the table records which rows
  // change (created, updated by Push, or stamped) and which keys are removed
  // (evicted, erased, dropped by the row cap), until the next StartDelta.
  // Construction, Restore and ApplyDelta start one too (a new table's base
  // is the empty table at step 0). Cheap: no scan.
  void StartDelta();
  // An in-memory copy of what changed since the period began: the changed
  // rows (key, stamp, full row incl. optimizer state, bucket), the removed
  // keys (a key removed and re-created is just a changed row), the buckets
  // that moved, and the table-wide state (step, counters, sweep cursor, lru
  // state, the changed blocks of the admission sketch, capacity), plus the
  // state of the delta's base (step, rows, counters, digests of its keys,
  // stamps and bucket layout). Same cost model as Snapshot: taken on the
  // owning thread, serialized anywhere with WriteSparseSnapshot (MTPSDELT).
  // Costs one pass over the index plus the copy of the changed rows only.
  SparseTableSnapshot DeltaSnapshot() const;
  // Applies a serialized delta (WriteSparseSnapshot of a DeltaSnapshot) to
  // this table, which must be exactly at the delta's base: same step, rows,
  // counters and digests of its keys and stamps (InvalidArgument otherwise,
  // e.g. "ckpt-7/server-0.shard-1.delta: chained to step 1200, the table is
  // at step 900"), and the same dim, optimizer kind and admission sketch
  // width as the original (InvalidArgument). With the base's bucket layout
  // (layout digest and capacity) the buckets are rewritten in place and the
  // layout follows the original's; otherwise rows are applied by key. A full
  // snapshot, malformed, truncated or checksum-failing input is Corruption,
  // and so is a delta whose result does not check out (its row count and
  // digests). Every message starts with `where`. On an error found before
  // anything is changed (the format, the checksum, the chain) the table is
  // left as it was; on a later one it is left empty (but valid). Nothing in
  // the input can crash it; it allocates only for what the input holds. With a
  // row cap below the delta's rows, the least recently updated rows beyond it
  // are dropped (counted as evicted), as by Restore; the table is then no base
  // for the next delta. Afterwards a new delta period starts (the applied
  // state is the base).
  Status ApplyDelta(const char* data, size_t size, const std::string& where);

  // The free-bucket marker of the index; a real key with this value works
  // like any other (exposed for tests).
  static constexpr uint64_t kEmptyKey = 0;
  // Occupied buckets sampled per row-cap eviction.
  static constexpr int kLruSample = 16;

 private:
  struct Bucket {
    uint64_t key;
    uint32_t row;
    uint32_t step;  // low 32 bits of the step of the row's last update
  };
  static_assert(sizeof(Bucket) == 16, "four buckets per cache line");
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  // What a delta's base (or result) must match: the table-wide counts and
  // digests of its content (sums modulo 2^64: key_sum of Mix64(key) over the
  // rows, stamp_sum of their stamps, layout_sum of Mix64(key) * (2 pos + 1)
  // over the occupied buckets).
  struct ChainState {
    uint64_t step = 0;
    uint64_t rows = 0;
    Counters counters;
    uint64_t key_sum = 0;
    uint64_t stamp_sum = 0;
    uint64_t layout_sum = 0;
    uint32_t capacity_log2 = 0;
  };
  struct DeltaView;
  static constexpr uint32_t kNoRow = ~uint32_t{0};
  static constexpr size_t kNoPos = ~size_t{0};
  friend class SparseTableSnapshot;

  // The bucket of key (the side bucket for key 0), or nullptr. Valid until
  // the next insertion or removal.
  Bucket* Find(uint64_t key);
  const Bucket* Find(uint64_t key) const;
  // Inserts key, known to be missing, with a new initialised row stamped with
  // the current step; evicts first when at the row cap. Returns its bucket.
  Bucket* Insert(uint64_t key);
  // Takes a free row (or a new one at the arena's end) and initialises it.
  uint32_t NewRow(uint64_t key);
  // Takes a free row or a new one at the arena's end, uninitialised.
  uint32_t AllocRow();
  // Back to the state of a new table (no rows, step 0, empty sketch), its
  // arena released.
  void Clear();
  // Restore's work once `data` is known to be a well-formed snapshot of this
  // table's row layout; errors leave the table partly loaded.
  Status RestoreChecked(const char* data, size_t size);
  // ApplyDelta's parts: the checks that change nothing, then the three ways
  // of applying (errors there leave the table partly changed).
  Status CheckDelta(const char* data, size_t size, DeltaView* view) const;
  Status ApplyInPlace(const DeltaView& d);
  Status ApplyWholeLayout(const DeltaView& d, bool* same_layout);
  Status ApplyByKey(const DeltaView& d);
  // Key 0's part of a delta, the table-wide state, and the checks of the
  // result (ApplyDelta's common end).
  Status ApplyKeyZero(const DeltaView& d);
  Status FinishApply(const DeltaView& d, bool same_layout);
  // Drops the least recently updated rows beyond the row cap (evicted).
  void TrimToRowCap();
  // Inserts key, known to be missing, at `stamp` with a fresh row (its
  // content to be filled in): no row-cap eviction, and growth without sweep.
  // Returns its bucket.
  Bucket* InsertForLoad(uint64_t key, uint32_t stamp);
  // The table's ChainState now.
  ChainState CurrentChain() const;
  // The bookkeeping of delta periods (see StartDelta).
  void NoteRemoved(uint64_t key) {
    if (!removed_overflow_) removed_.push_back(key);
  }
  void NoteDirty(size_t pos) {
    if (!layout_all_) dirty_pos_.push_back(pos);
  }
  // Keeps the lists within their bounds; called where the index is
  // consistent (the end of Pull, Push and Erase).
  size_t DeltaListLimit() const { return 4096 + capacity_ / 4; }
  void BoundDeltaLists() {
    const size_t limit = DeltaListLimit();
    if (removed_.size() > limit || dirty_pos_.size() > limit || created_at_base_.size() > limit) {
      CompactDeltaLists(limit);
    }
  }
  void CompactDeltaLists(size_t limit);
  // Removes the bucket at pos by backward shift and frees its row.
  void EraseAt(size_t pos);
  void EraseEmptyKey();
  // Evicts the approximately least recently updated row (row cap).
  void EvictOneLru();
  // Scans the next sweep_budget_ buckets for rows of age >= T.
  void SweepExpired();
  // Halves the index while it is less than 1/8 full.
  void MaybeShrink();
  // Rebuilds the index with new_capacity buckets (a power of two); with
  // eviction by age it also drops expired rows unless !sweep.
  void Rehash(size_t new_capacity, bool sweep = true);
  void Prefetch(uint64_t key) const;
  // Whether inserting a row now may free another (row cap, or a growth of
  // the index that sweeps for expired rows): row pointers held across it
  // would then dangle.
  bool InsertMayFreeRows() const;
  uint32_t Age(uint32_t stamp) const { return static_cast<uint32_t>(step_) - stamp; }
  // Pull of rows of kDim floats (0: dim_, known only at run time).
  template <size_t kDim>
  void PullRows(const uint64_t* keys, const uint32_t* sel, size_t m, bool create_missing,
                float* out);
  template <OptimizerKind kKind>
  void PushRows(const uint64_t* keys, const uint32_t* sel, size_t m, const float* grads);

  float* RowPtr(uint32_t row) {
    return chunks_[row >> chunk_shift_].get() + (row & chunk_mask_) * row_floats_;
  }
  const float* RowPtr(uint32_t row) const {
    return chunks_[row >> chunk_shift_].get() + (row & chunk_mask_) * row_floats_;
  }

  // Constant after construction.
  OptimizerKind kind_;
  int dim_;
  size_t row_floats_;
  float init_scale_;
  uint64_t seed_;
  float learning_rate_;            // SGD, Adagrad, Adam
  float initial_accumulator_;      // Adagrad
  float beta1_, beta2_, epsilon_;  // Adam
  bool adam_table_step_;           // Adam: t is the table's step (adam.step_count TABLE)
  float ftrl_alpha_, ftrl_beta_, ftrl_l1_, ftrl_l2_;
  uint32_t admission_min_count_;
  uint32_t evict_after_steps_;
  size_t max_rows_;
  int chunk_shift_;  // rows per chunk = 1 << chunk_shift_
  uint32_t chunk_mask_;
  size_t chunk_bytes_;

  // Index.
  std::unique_ptr<Bucket[], FreeDeleter> buckets_;
  size_t capacity_ = 0;  // buckets, a power of two
  size_t mask_ = 0;      // capacity_ - 1
  size_t occupied_ = 0;  // buckets in use (key 0 is not in a bucket)
  size_t grow_at_ = 0;   // occupied_ above which the index doubles
  bool has_empty_key_ = false;
  Bucket empty_key_bucket_{kEmptyKey, kNoRow, 0};

  // Arena.
  std::vector<std::unique_ptr<float[], FreeDeleter>> chunks_;
  uint32_t arena_rows_ = 0;          // rows ever handed out (live + free)
  std::vector<uint32_t> free_rows_;  // freed rows, reused first
  size_t num_rows_ = 0;              // live rows

  // Admission, eviction.
  std::unique_ptr<CountMinSketch> sketch_;  // only when admission_min_count_ > 1
  uint64_t step_ = 0;                       // Push calls so far
  size_t sweep_cursor_ = 0;
  size_t sweep_budget_ = 0;  // buckets scanned per Push
  uint64_t lru_rng_;         // xorshift state for row-cap sampling
  Counters counters_;

  // Content digests (see ChainState), kept up to date by every change.
  uint64_t key_sum_ = 0;
  uint64_t stamp_sum_ = 0;
  uint64_t layout_sum_ = 0;
  // The delta period: its base, the keys inserted while the step was still
  // the base's (their stamps do not tell them from older rows), removed
  // keys, bucket positions rewritten by backward shifts. An overflowing list
  // is dropped: all rows stamped at the base step count as changed
  // (created_overflow_), or the delta lists every row's bucket (layout_all_,
  // also set by a resize of the index).
  ChainState base_;
  std::vector<uint64_t> created_at_base_;
  std::vector<uint64_t> removed_;
  std::vector<size_t> dirty_pos_;
  bool created_overflow_ = false;
  bool removed_overflow_ = false;
  bool layout_all_ = false;
};

// An in-memory copy of a SparseTable, taken by SparseTable::Snapshot on the
// table's owning thread at about memcpy speed (copies of the bucket array, the
// arena chunks in use, key 0's side bucket, step, counters, the admission
// sketch's counters, the options that define the row layout, the sweep
// position and row-cap sampler state). Movable, owns its memory, and
// independent of the table afterwards: it may be serialized on any thread
// while the table keeps changing. A default-constructed one is empty (dim 0:
// no table restores it) and only there to be assigned to. Or a delta, taken
// by SparseTable::DeltaSnapshot: the changed rows' content and the lists of
// what else changed since the delta's base (see WriteSparseSnapshot).
class SparseTableSnapshot {
 public:
  SparseTableSnapshot() = default;
  SparseTableSnapshot(const SparseTableSnapshot&) = delete;
  SparseTableSnapshot& operator=(const SparseTableSnapshot&) = delete;
  SparseTableSnapshot(SparseTableSnapshot&&) = default;
  SparseTableSnapshot& operator=(SparseTableSnapshot&&) = default;
  ~SparseTableSnapshot() = default;

  size_t rows() const { return num_rows_; }  // live rows, as SparseTable::size()
  int dim() const { return dim_; }
  int64_t steps() const { return static_cast<int64_t>(step_); }
  // Bytes held (bucket array, arena rows, sketch counters, a delta's lists).
  size_t memory_bytes() const;
  // A delta (SparseTable::DeltaSnapshot) rather than a full snapshot.
  bool is_delta() const { return is_delta_; }
  // A delta's removed keys (keys of its base, or created in its period, that
  // the table no longer has) and changed rows; 0 in a full snapshot. A delta
  // that lists every row's bucket may leave its removed keys out (then 0:
  // the rows of the base it does not list are the removed ones).
  size_t removed_keys() const { return removed_.size(); }
  size_t changed_rows() const { return changed_keys_.size(); }

 private:
  friend class SparseTable;
  friend Status WriteSparseSnapshot(
      const SparseTableSnapshot& snapshot,
      const std::function<Status(const char* data, size_t size)>& sink);

  SparseTable::OptimizerKind kind_ = SparseTable::OptimizerKind::kSgd;
  int dim_ = 0;
  size_t row_floats_ = 0;
  uint64_t step_ = 0;
  SparseTable::Counters counters_;
  size_t num_rows_ = 0;
  // The index, bucket for bucket (row: into arena_), and key 0's bucket.
  std::unique_ptr<SparseTable::Bucket[], SparseTable::FreeDeleter> buckets_;
  size_t capacity_ = 0;
  bool has_empty_key_ = false;
  SparseTable::Bucket empty_key_bucket_{SparseTable::kEmptyKey, SparseTable::kNoRow, 0};
  size_t sweep_cursor_ = 0;
  uint64_t lru_rng_ = 0;
  // Arena rows 0 .. arena_rows_ - 1 (live and free), row_floats_ each.
  std::unique_ptr<float[], SparseTable::FreeDeleter> arena_;
  size_t arena_rows_ = 0;
  // Admission sketch (empty without one).
  int sketch_width_log2_ = 0;
  uint64_t sketch_seed_ = 0;
  std::vector<uint16_t> sketch_counters_;

  // A delta: the rest of the table-wide state is above (step_, counters_,
  // num_rows_, capacity_, sweep_cursor_, lru_rng_ are the result's), the
  // changed rows' content in arena_ (arena_rows_ of them), in the order of
  // changed_keys_. Key 0's row, when changed, comes first (position kNoPos).
  bool is_delta_ = false;
  uint32_t delta_flags_ = 0;
  uint32_t key0_state_ = 0;  // 0 absent, 1 present and unchanged, 2 changed
  SparseTable::ChainState base_;
  SparseTable::ChainState result_;
  std::vector<uint64_t> changed_keys_;
  std::vector<uint64_t> changed_pos_;
  std::vector<uint32_t> changed_stamps_;
  std::vector<uint64_t> moved_keys_;
  std::vector<uint64_t> moved_pos_;
  std::vector<uint64_t> emptied_;
  std::vector<uint64_t> removed_;
  // The dirty sketch blocks' numbers; their counters in sketch_counters_.
  std::vector<uint32_t> sketch_blocks_;
  int sketch_block_log2_ = 0;
};

// Serializes a snapshot (full or delta) through `sink`, called with
// consecutive chunks of at most 1 MiB; stops and returns the first non-OK
// status of sink. The full format (MTPSROWS version 1) is self-describing,
// all integers and floats little-endian, no padding:
//   offset  0  char[8] "MTPSROWS"
//           8  u32 version (1)
//          12  u32 dim
//          16  u32 row_floats (see the row layout above)
//          20  u32 optimizer kind: 0 SGD, 1 Adagrad, 2 Adam, 3 FTRL
//          24  u64 table step (Push calls)
//          32  i64 admitted, 40 i64 rejected, 48 i64 evicted
//          56  u64 row count R
//          64  u32 index capacity, log2
//          68  u32 sketch depth D (0: no admission sketch)
//          72  u64 sweep cursor (a bucket of the index)
//          80  u64 row-cap sampler state (xorshift64)
//          88  u32 sketch width log2 W (0 without sketch)
//          92  u32 reserved (0)
//          96  u64 sketch hash seed (0 without sketch)
//         104  D * 2^W u16 sketch counters (row d at [d 2^W, (d+1) 2^W))
//              R rows of: u64 key, u32 last-update step stamp (low 32 bits of
//                the step), row_floats f32 (embedding then optimizer state;
//                Adam's step count is a u32 in the last slot)
//              u64 SnapshotChecksum of every byte before it
// Only live rows are written, key 0 first when present, then the index's
// buckets in cyclic order from just after a free one: inserted in that order
// into an index of the same capacity, they land in the same buckets.
//
// A delta (DeltaSnapshot) is written as MTPSDELT version 1, same
// conventions. A "chain state" is 72 bytes: u64 step, u64 rows, i64 admitted,
// i64 rejected, i64 evicted, u64 key digest, u64 stamp digest, u64 layout
// digest (sums modulo 2^64 of Mix64(key) over the rows, of the rows' stamps,
// of Mix64(key) * (2 bucket + 1) over the index's buckets), u32 index
// capacity log2, u32 reserved (0).
//   offset  0  char[8] "MTPSDELT"
//           8  u32 version (1)
//          12  u32 dim, 16 u32 row_floats, 20 u32 optimizer kind (as above)
//          24  u32 flags: bit 0 whole layout (every row's bucket is listed:
//                the changed rows with their content, the others as moved;
//                no emptied buckets), bit 1 removed keys left out (whole
//                layout only: the base's rows not listed are the removed)
//          28  u32 key 0: 0 absent, 1 present and unchanged, 2 changed (its
//                record is the first changed row, bucket 2^64 - 1)
//          32  chain state of the base (what ApplyDelta checks the table against)
//         104  chain state of the result (checked after applying)
//         176  u64 sweep cursor, 184 u64 row-cap sampler state
//         192  u32 sketch depth D (0: no admission sketch), 196 u32 sketch
//                width log2 W, 200 u64 sketch hash seed, 208 u32 sketch block
//                log2 L (counters per block: min(2^11, D 2^W); 0 without
//                sketch), 212 u32 reserved (0)
//         216  u64 sketch blocks B, 224 u64 changed rows C, 232 u64 moved
//                rows M, 240 u64 emptied buckets E, 248 u64 removed keys X
//         256  B dirty sketch blocks of: u32 block number, 2^L u16 counters
//              C changed rows of: u64 key, u64 bucket, u32 stamp, row_floats
//                f32 (as in MTPSROWS), ascending bucket
//              M moved rows (unchanged row and stamp, another bucket, or
//                every unchanged row in a whole layout): u64 key, u64
//                bucket, ascending bucket
//              E emptied buckets: u64 bucket, ascending
//              X removed keys: u64 key, ascending
//              u64 SnapshotChecksum of every byte before it
// The buckets of the three lists are distinct. A delta of a table where
// nothing changed is 264 bytes (header and checksum: no sketch block is dirty).
Status WriteSparseSnapshot(const SparseTableSnapshot& snapshot,
                           const std::function<Status(const char* data, size_t size)>& sink);

// The checksum closing the MTPSROWS and MTPSDENS (ps/table/dense_store.h)
// formats: a 64-bit hash of a byte stream, xxHash64-style (four lanes of
// 8-byte little-endian words; the tail word by word, then the bytes left
// zero-padded into one word; the length last; a SplitMix64 finish), so any
// change of one 8-byte word, hence any single flipped byte, changes it.
// Fixed forever for these formats. Feed it in pieces of any size with Update;
// Digest() does not change the state.
class SnapshotChecksum {
 public:
  void Update(const char* data, size_t size);
  uint64_t Digest() const;
  // The checksum of data[0..size) in one call.
  static uint64_t Of(const char* data, size_t size);

 private:
  void Block(const char* p);  // 32 bytes

  uint64_t lane_[4] = {0x60ea27eeadc0b5d6ULL, 0xc2b2ae3d27d4eb4fULL, 0, 0x61c8864e7a143579ULL};
  uint64_t length_ = 0;
  char tail_[32];
  size_t tail_size_ = 0;
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_SPARSE_TABLE_H_
