// SparseTable: one server shard's sparse embedding rows and their Adagrad state.
//
// Row layout. A table has two parts:
//  * The index: an open-addressing hash table with linear probing over a
//    power-of-two array of 16-byte buckets {key, row}, doubled when it would
//    become more than 7/10 full. A bucket whose key is kEmptyKey (0) is free;
//    the real key 0 is kept beside the array (has_empty_key_/empty_key_row_),
//    so every 64-bit value is a valid key. A key's home bucket is
//    Mix64(key) & mask: keys reach a server already partitioned by their bits,
//    so the table re-mixes them instead of trusting the low bits. The all-zero
//    empty pattern also lets a new array come from calloc (lazily zeroed pages).
//  * The arena: rows are numbered 0, 1, 2, ... in insertion order and live in
//    fixed-size chunks (about 1 MiB, a power of two of rows, 64-byte aligned).
//    Row r is 2*dim contiguous floats:
//        [ w_0 ... w_{dim-1} | acc_0 ... acc_{dim-1} ]
//    the embedding followed by its Adagrad accumulator, so a Push touches one
//    contiguous span (exactly one cache line at dim 8). Chunks never move:
//    growth never copies rows, and only the index is rehashed.
// Rows are never removed.
//
// Thread-safety: none. A SparseTable is owned by one server thread (the single
// writer of its key partition) and must not be touched by any other thread;
// it takes no locks. Even Pull mutates (it may insert).
#ifndef MTPS_PS_SPARSE_TABLE_H_
#define MTPS_PS_SPARSE_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common/status.h"
#include "proto/config.pb.h"

namespace mtps {

struct SparseTableOptions {
  int dim = 8;
  float init_scale = 0.01f;  // new rows uniform in [-init_scale, init_scale]
  uint64_t seed = 1;  // with the key, determines a row's initial value (order/shard independent)
  config::Adagrad adagrad;  // proto/config.proto
};

// Checks options that come from a config: dim > 0, init_scale >= 0 and
// finite, learning_rate >= 0, initial_accumulator > 0 (Adagrad divides by
// sqrt(acc)). The SparseTable constructor CHECKs the same conditions, so call
// this first on anything read from outside.
Status ValidateSparseTableOptions(const SparseTableOptions& options);

// The initial value of element j of key's row: deterministic function of
// (seed, key, j), uniform in [-scale, scale]; used by Pull and exposed for tests.
float InitialValue(uint64_t seed, uint64_t key, int j, float scale);

class SparseTable {
 public:
  // options must satisfy ValidateSparseTableOptions (CHECKed).
  explicit SparseTable(const SparseTableOptions& options);
  SparseTable(const SparseTable&) = delete;
  SparseTable& operator=(const SparseTable&) = delete;
  SparseTable(SparseTable&&) = default;
  SparseTable& operator=(SparseTable&&) = default;
  ~SparseTable() = default;

  int dim() const { return dim_; }

  // Copies the rows of keys[0..n) into out[0..n*dim). A missing key is
  // inserted first when create_missing, otherwise answered with its initial
  // value and not inserted.
  void Pull(const uint64_t* keys, size_t n, bool create_missing, float* out);

  // Applies Adagrad for each key with grads[i*dim .. (i+1)*dim):
  // acc += g*g; w -= lr * g / sqrt(acc) (acc starts at initial_accumulator).
  // Missing keys are inserted first. A key repeated in one call is applied
  // once per occurrence, in order.
  void Push(const uint64_t* keys, size_t n, const float* grads);

  // Grows the index so that `rows` rows fit without another rehash.
  void Reserve(size_t rows);

  size_t size() const { return num_rows_; }  // rows
  // Index + row storage actually allocated, in bytes.
  size_t memory_bytes() const;

  // The free-bucket marker of the index; a real key with this value works
  // like any other (exposed for tests).
  static constexpr uint64_t kEmptyKey = 0;

 private:
  struct Bucket {
    uint64_t key;
    uint64_t row;
  };
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  struct AlignedFloatDeleter {
    void operator()(float* p) const;
  };
  static constexpr uint64_t kNoRow = ~uint64_t{0};

  // The row of key, or kNoRow.
  uint64_t Find(uint64_t key) const;
  // The row of key, inserting an initialised row when missing.
  uint64_t FindOrInsert(uint64_t key);
  // Appends a row initialised for key to the arena and returns its number.
  uint64_t NewRow(uint64_t key);
  // Rebuilds the index with new_capacity buckets (a power of two).
  void Rehash(size_t new_capacity);
  void Prefetch(uint64_t key) const;

  float* RowPtr(uint64_t row) {
    return chunks_[row >> chunk_shift_].get() + (row & chunk_mask_) * row_floats_;
  }
  const float* RowPtr(uint64_t row) const {
    return chunks_[row >> chunk_shift_].get() + (row & chunk_mask_) * row_floats_;
  }

  // Constant after construction.
  int dim_;
  size_t row_floats_;  // 2 * dim
  float init_scale_;
  uint64_t seed_;
  float learning_rate_;
  float initial_accumulator_;
  int chunk_shift_;  // rows per chunk = 1 << chunk_shift_
  uint64_t chunk_mask_;

  // Index.
  std::unique_ptr<Bucket[], FreeDeleter> buckets_;
  size_t capacity_ = 0;  // buckets, a power of two
  size_t mask_ = 0;      // capacity_ - 1
  size_t occupied_ = 0;  // buckets in use (key 0 is not in a bucket)
  size_t grow_at_ = 0;   // occupied_ above which the index doubles
  bool has_empty_key_ = false;
  uint64_t empty_key_row_ = kNoRow;

  // Arena.
  std::vector<std::unique_ptr<float[], AlignedFloatDeleter>> chunks_;
  size_t num_rows_ = 0;
};

}  // namespace mtps

#endif  // MTPS_PS_SPARSE_TABLE_H_
