// BareLayout: SparseTable's memory layout with nothing else, for ps_bench's
// `floor` section -- what a lookup of this shape costs on the machine at hand.
//
// An index of 16-byte buckets (key, row) at a power-of-two capacity, home
// bucket Mix64(key) & mask, linear probing, over an arena of rows of
// 2 * dim floats (Adagrad: weights, then accumulators); both on huge pages
// (MADV_HUGEPAGE). Pull and Push run the table's two passes per block of 128
// keys (buckets prefetched 16 keys ahead, rows 8 ahead) with no admission,
// eviction, step stamps, counters or checks: the cost of the layout's two
// dependent memory accesses per key. PullDirect and PushDirect skip the
// index (the row is Mix64(key) mod rows, prefetched 16 keys ahead): one
// access per key, the floor of any layout. PullInline and PushInline, when
// built with `with_inline`, use a second index whose slots hold the key and
// its row together (linear probing at the same capacity): what a table with
// its rows in the index would reach, probes included. PullTagged and
// PushTagged find the same slots through a byte per slot (7 bits of the
// hash, as Swiss tables do), an array small enough to stay mostly in the caches, so
// only the slot itself comes from memory.
//
// Thread-compatible (one thread at a time). A benchmark aid, not a table:
// there is no erase, growth or initial value.
#ifndef MTPS_TESTS_BENCH_BARE_LAYOUT_H_
#define MTPS_TESTS_BENCH_BARE_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mtps {
namespace bench {

class BareLayout {
 public:
  // capacity: a power of two above rows (the table's own, to compare alike).
  // Rows start with weights 0 and accumulators `initial_accumulator`.
  BareLayout(size_t capacity, size_t rows, int dim, float initial_accumulator, bool with_inline);
  ~BareLayout();
  BareLayout(const BareLayout&) = delete;
  BareLayout& operator=(const BareLayout&) = delete;

  // Gives `key` (never 0, never inserted before) the next row; false when
  // the rows or the index are full.
  bool Insert(uint64_t key);

  // out[i * dim ...]: the weights of keys[i]'s row. Returns how many keys
  // were found (all of them, unless one was never inserted).
  size_t Pull(const uint64_t* keys, size_t n, float* out) const;
  // Adagrad (accumulator += g^2, weight -= lr * g / sqrt(accumulator)) on
  // the rows of the keys found; returns how many were.
  size_t Push(const uint64_t* keys, size_t n, const float* grads, float lr);

  // As Pull and Push with the row Mix64(key) mod rows, no index.
  void PullDirect(const uint64_t* keys, size_t n, float* out) const;
  void PushDirect(const uint64_t* keys, size_t n, const float* grads, float lr);

  // As Pull and Push on the slots of key and row (with_inline only); they
  // return how many keys were found.
  size_t PullInline(const uint64_t* keys, size_t n, float* out) const;
  size_t PushInline(const uint64_t* keys, size_t n, const float* grads, float lr);

  // As PullInline and PushInline, the slot found through its tag byte.
  size_t PullTagged(const uint64_t* keys, size_t n, float* out) const;
  size_t PushTagged(const uint64_t* keys, size_t n, const float* grads, float lr);

  size_t size() const { return used_; }
  bool has_inline() const { return slots_ != nullptr; }
  // Bytes of the slots of key and row for these sizes.
  static size_t InlineBytes(size_t capacity, int dim) {
    return capacity * ((2 + 2 * static_cast<size_t>(dim)) * sizeof(float) + 1);
  }

 private:
  struct Bucket {
    uint64_t key;
    uint64_t row;
  };
  const float* FindRow(uint64_t key) const;
  float* RowAt(size_t row) const { return arena_ + row * row_floats_; }
  // Slot i: the key (two floats' room), then its row.
  float* SlotAt(size_t i) const { return slots_ + i * (2 + row_floats_); }
  static uint64_t SlotKey(const float* slot) {
    uint64_t key;
    std::memcpy(&key, slot, sizeof(key));
    return key;
  }
  float* FindSlot(uint64_t key) const;
  // The first slot from key's home whose tag matches (or an empty one's):
  // reads the tags only.
  size_t TagCandidate(uint64_t h) const;
  // Its row if the candidate holds key; else FindSlot's answer.
  float* CheckSlot(size_t candidate, uint64_t key) const;
  // Pull (kPush false) and Push: the table's two passes per block.
  template <bool kPush>
  size_t TwoPass(const uint64_t* keys, size_t n, float* out, const float* grads, float lr) const;
  template <bool kPush>
  size_t Tagged(const uint64_t* keys, size_t n, float* out, const float* grads, float lr) const;

  size_t capacity_, mask_, rows_;
  size_t dim_, row_floats_;
  size_t used_ = 0;
  size_t index_bytes_, arena_bytes_;
  Bucket* index_;
  float* arena_;
  float* slots_ = nullptr;   // with_inline
  uint8_t* tags_ = nullptr;  // with_inline: 0 empty, else 0x80 | the hash's top 7 bits
};

}  // namespace bench
}  // namespace mtps

#endif  // MTPS_TESTS_BENCH_BARE_LAYOUT_H_
