// Embedding pooling: turns a Batch's sparse keys plus the pulled embedding rows
// into the dense model input, and routes the input gradient back to the rows.
//
// The trainer pulls each distinct key of a batch once: UniqueKeys gives the
// distinct keys and, for every key occurrence, its row among them; the
// embeddings arrive as a U x dim row-major float array in that order.
// PoolEmbeddings then fills the B x (num_slots*dim + num_dense) input and
// PoolEmbeddingsBackward turns d loss / d input into the U x dim gradient of
// the rows. All three run once per batch; none allocates per example.
// Free functions with no state: thread-safe on distinct outputs. KeyDeduper
// is UniqueKeys with a table reused across batches.
#ifndef MTPS_WORKER_NN_EMBEDDING_BAG_H_
#define MTPS_WORKER_NN_EMBEDDING_BAG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "worker/data/example.h"
#include "worker/nn/eigen.h"

namespace mtps {

// Deduplicates keys: *unique gets the distinct keys in first-appearance order, (*index)[j] the
// position in *unique of keys[j]. Builds a fresh table per call; a caller that deduplicates
// batch after batch should keep a KeyDeduper instead.
void UniqueKeys(const std::vector<uint64_t>& keys, std::vector<uint64_t>* unique,
                std::vector<uint32_t>* index);

// UniqueKeys for batch after batch, with one hash table kept across calls:
// no allocation per call, and the table is sized to the distinct keys of the
// previous call (a batch's keys repeat: 11,300 Ali-CCP keys per 256 examples
// hold about 2,700 distinct ones) rather than to the keys, so the part a call
// clears and probes is a quarter of UniqueKeys' and stays in cache (it grows
// within a call when it fills past half). Clearing that part is kept on
// purpose: measured in the trainer, a table that is not cleared (stamped
// entries) is slower, as its random probes then miss cache where the
// sequential clear had brought the table in. Results are exactly
// UniqueKeys'. Owns its table; not thread-safe (one per thread).
class KeyDeduper {
 public:
  void Unique(const std::vector<uint64_t>& keys, std::vector<uint64_t>* unique,
              std::vector<uint32_t>* index);

 private:
  // Clears and uses the first `capacity` entries of table_ (a power of two).
  void UseCapacity(size_t capacity);

  // Fibonacci hashing: the top bits of key * 2^64/phi (one multiply; the
  // keys are hashes already, and a run of small keys still spreads out).
  size_t Slot(uint64_t key) const {
    return static_cast<size_t>((key * 0x9e3779b97f4a7c15ULL) >> shift_);
  }

  std::vector<uint32_t> table_;  // 1 + position in *unique; 0 = empty
  size_t mask_ = 0;              // capacity in use - 1
  int shift_ = 64;               // 64 - log2(capacity in use)
  size_t last_unique_ = 0;       // distinct keys of the previous call
};

// Embedding groups (Model::embedding_groups): a model whose towers must not
// share embeddings reads `groups` copies of every slot, each with its own
// keys. GroupKey gives group g's key for `key` (group 0 keeps the key, so a
// one-group model sees exactly the data's keys); ReplicateSlots writes into
// *out a batch with groups * num_slots slots laid out group by group, which
// PoolEmbeddings turns into the [group 0 | group 1 | ... | dense] input row.
uint64_t GroupKey(uint64_t key, int group);
void ReplicateSlots(const Batch& in, int groups, Batch* out);

// Fills *input (resized to B x (num_slots*dim + num_dense)): for example b and slot s, the pooled
// embedding of that slot's keys (sum, or weighted mean for Pooling::kMean, weighted by
// batch.weights; zeros when the slot has no keys), with emb the U x dim row-major embeddings of
// the unique keys and index from UniqueKeys; then the batch's dense features.
// Mean pooling divides the weighted sum by the sum of the slot's key weights; a slot whose
// weights sum to 0 pools to zeros. slots.size() must equal batch.num_slots.
template <typename T>
void PoolEmbeddings(const Batch& batch, const std::vector<SlotInfo>& slots,
                    const std::vector<uint32_t>& index, const float* emb, int dim,
                    RowMatrix<T>* input);

// Backward of PoolEmbeddings: writes the U x dim gradient of the unique embeddings (overwriting
// emb_grad), summing over every occurrence of a key. The dense columns of input_grad are ignored.
template <typename T>
void PoolEmbeddingsBackward(const Batch& batch, const std::vector<SlotInfo>& slots,
                            const std::vector<uint32_t>& index, const RowMatrix<T>& input_grad,
                            int dim, size_t num_unique, float* emb_grad);

}  // namespace mtps

#endif  // MTPS_WORKER_NN_EMBEDDING_BAG_H_
