// Embedding pooling (see embedding_bag.h); instantiated for float and double.
#include "worker/nn/embedding_bag.h"

#include <algorithm>

#include <glog/logging.h>

#include "common/base/hash.h"

namespace mtps {

void UniqueKeys(const std::vector<uint64_t>& keys, std::vector<uint64_t>* unique,
                std::vector<uint32_t>* index) {
  KeyDeduper().Unique(keys, unique, index);
}

namespace {

// The smallest power of two >= max(16, n).
size_t TableCapacity(size_t n) {
  size_t capacity = 16;
  while (capacity < n) capacity *= 2;
  return capacity;
}

}  // namespace

void KeyDeduper::UseCapacity(size_t capacity) {
  if (table_.size() < capacity) table_.resize(capacity);
  std::fill(table_.begin(), table_.begin() + capacity, 0u);
  mask_ = capacity - 1;
  shift_ = 64;
  while ((size_t{1} << (64 - shift_)) < capacity) --shift_;
}

void KeyDeduper::Unique(const std::vector<uint64_t>& keys, std::vector<uint64_t>* unique,
                        std::vector<uint32_t>* index) {
  unique->clear();
  index->resize(keys.size());
  if (keys.empty()) return;
  // Open addressing with linear probing over a power-of-two table at most
  // half full; sized for about 3x the previous call's distinct keys (but not
  // beyond 2x this call's keys), doubled and refilled when half full.
  const size_t expected = last_unique_ > 0 ? 3 * last_unique_ : 2 * keys.size();
  UseCapacity(TableCapacity(std::min(2 * keys.size(), expected)));
  unique->reserve(keys.size());
  uint32_t* const out = index->data();
  for (size_t j = 0; j < keys.size(); ++j) {
    const uint64_t key = keys[j];
    size_t slot = Slot(key);
    while (true) {
      const uint32_t entry = table_[slot];
      if (entry == 0) {
        const uint32_t position = static_cast<uint32_t>(unique->size());
        table_[slot] = position + 1;
        out[j] = position;
        unique->push_back(key);
        if (2 * unique->size() > mask_ + 1) {
          UseCapacity(2 * (mask_ + 1));
          for (size_t u = 0; u < unique->size(); ++u) {
            size_t s = Slot((*unique)[u]);
            while (table_[s] != 0) s = (s + 1) & mask_;
            table_[s] = static_cast<uint32_t>(u) + 1;
          }
        }
        break;
      }
      if ((*unique)[entry - 1] == key) {
        out[j] = entry - 1;
        break;
      }
      slot = (slot + 1) & mask_;
    }
  }
  last_unique_ = unique->size();
}

namespace {

void CheckBatchShape(const Batch& batch, const std::vector<SlotInfo>& slots,
                     const std::vector<uint32_t>& index) {
  CHECK_EQ(slots.size(), static_cast<size_t>(batch.num_slots));
  CHECK_EQ(batch.offsets.size(), static_cast<size_t>(batch.num_examples) * batch.num_slots + 1);
  CHECK_EQ(index.size(), batch.keys.size());
  CHECK_EQ(batch.weights.size(), batch.keys.size());
  CHECK_EQ(batch.dense.size(), static_cast<size_t>(batch.num_examples) * batch.num_dense);
  CHECK_LE(batch.offsets.back(), batch.keys.size());
}

// Sum of the weights of keys [begin, end).
float WeightSum(const Batch& batch, uint32_t begin, uint32_t end) {
  float sum = 0;
  for (uint32_t j = begin; j < end; ++j) sum += batch.weights[j];
  return sum;
}

// The pooling loops, with the embedding width fixed at compile time when
// kDim > 0 (then each key is a few vector instructions instead of a loop of
// unknown length: pooling was ~12% of the worker's training time at dim 8),
// or `dim` when kDim == 0. Every width computes the same expressions in the
// same order, so the results do not depend on which loop ran.
template <typename T, int kDim>
void PoolForward(const Batch& batch, const std::vector<SlotInfo>& slots,
                 const std::vector<uint32_t>& index, const float* emb, int dim_arg,
                 RowMatrix<T>* input) {
  const int dim = kDim > 0 ? kDim : dim_arg;
  const int num_slots = batch.num_slots;
  const int num_dense = batch.num_dense;
  const int cols = num_slots * dim + num_dense;
  const uint32_t* offsets = batch.offsets.data();
  const float* weights = batch.weights.data();
  const uint32_t* idx = index.data();
  for (int b = 0; b < batch.num_examples; ++b) {
    T* row = input->data() + static_cast<size_t>(b) * cols;
    for (int s = 0; s < num_slots; ++s) {
      T* out = row + s * dim;
      const size_t cell = static_cast<size_t>(b) * num_slots + s;
      const uint32_t begin = offsets[cell];
      const uint32_t end = offsets[cell + 1];
      std::fill(out, out + dim, T(0));
      for (uint32_t j = begin; j < end; ++j) {
        const T w = weights[j];
        const float* e = emb + static_cast<size_t>(idx[j]) * dim;
        for (int d = 0; d < dim; ++d) out[d] += w * static_cast<T>(e[d]);
      }
      if (slots[s].pooling == Pooling::kMean && end > begin) {
        const float weight_sum = WeightSum(batch, begin, end);
        const T scale = weight_sum != 0 ? T(1) / static_cast<T>(weight_sum) : T(0);
        for (int d = 0; d < dim; ++d) out[d] *= scale;
      }
    }
    const float* dense = batch.dense.data() + static_cast<size_t>(b) * num_dense;
    for (int d = 0; d < num_dense; ++d) row[num_slots * dim + d] = static_cast<T>(dense[d]);
  }
}

template <typename T, int kDim>
void PoolBackward(const Batch& batch, const std::vector<SlotInfo>& slots,
                  const std::vector<uint32_t>& index, const RowMatrix<T>& input_grad, int dim_arg,
                  size_t num_unique, float* emb_grad) {
  const int dim = kDim > 0 ? kDim : dim_arg;
  const int num_slots = batch.num_slots;
  const uint32_t* offsets = batch.offsets.data();
  const float* weights = batch.weights.data();
  const uint32_t* idx = index.data();
  for (int b = 0; b < batch.num_examples; ++b) {
    const T* row = input_grad.data() + static_cast<size_t>(b) * input_grad.cols();
    for (int s = 0; s < num_slots; ++s) {
      const T* g = row + s * dim;
      const size_t cell = static_cast<size_t>(b) * num_slots + s;
      const uint32_t begin = offsets[cell];
      const uint32_t end = offsets[cell + 1];
      if (begin == end) continue;
      T scale = T(1);
      if (slots[s].pooling == Pooling::kMean) {
        const float weight_sum = WeightSum(batch, begin, end);
        scale = weight_sum != 0 ? T(1) / static_cast<T>(weight_sum) : T(0);
      }
      for (uint32_t j = begin; j < end; ++j) {
        DCHECK_LT(idx[j], num_unique);
        const T coef = scale * static_cast<T>(weights[j]);
        float* eg = emb_grad + static_cast<size_t>(idx[j]) * dim;
        for (int d = 0; d < dim; ++d) eg[d] += static_cast<float>(coef * g[d]);
      }
    }
  }
}

}  // namespace

template <typename T>
void PoolEmbeddings(const Batch& batch, const std::vector<SlotInfo>& slots,
                    const std::vector<uint32_t>& index, const float* emb, int dim,
                    RowMatrix<T>* input) {
  CheckBatchShape(batch, slots, index);
  input->resize(batch.num_examples, batch.num_slots * dim + batch.num_dense);
  switch (dim) {
    case 4:
      return PoolForward<T, 4>(batch, slots, index, emb, dim, input);
    case 8:
      return PoolForward<T, 8>(batch, slots, index, emb, dim, input);
    case 16:
      return PoolForward<T, 16>(batch, slots, index, emb, dim, input);
    case 32:
      return PoolForward<T, 32>(batch, slots, index, emb, dim, input);
    default:
      return PoolForward<T, 0>(batch, slots, index, emb, dim, input);
  }
}

template <typename T>
void PoolEmbeddingsBackward(const Batch& batch, const std::vector<SlotInfo>& slots,
                            const std::vector<uint32_t>& index, const RowMatrix<T>& input_grad,
                            int dim, size_t num_unique, float* emb_grad) {
  CheckBatchShape(batch, slots, index);
  CHECK_EQ(input_grad.rows(), batch.num_examples);
  CHECK_GE(input_grad.cols(), static_cast<Eigen::Index>(batch.num_slots) * dim);
  std::fill(emb_grad, emb_grad + num_unique * dim, 0.0f);
  // The backward keeps the loop of runtime length: at dim 8 the fixed-width
  // version measured slower (321 vs 289 ns per Ali-CCP example).
  PoolBackward<T, 0>(batch, slots, index, input_grad, dim, num_unique, emb_grad);
}

template void PoolEmbeddings<float>(const Batch&, const std::vector<SlotInfo>&,
                                    const std::vector<uint32_t>&, const float*, int,
                                    RowMatrix<float>*);
template void PoolEmbeddings<double>(const Batch&, const std::vector<SlotInfo>&,
                                     const std::vector<uint32_t>&, const float*, int,
                                     RowMatrix<double>*);
template void PoolEmbeddingsBackward<float>(const Batch&, const std::vector<SlotInfo>&,
                                            const std::vector<uint32_t>&, const RowMatrix<float>&,
                                            int, size_t, float*);
template void PoolEmbeddingsBackward<double>(const Batch&, const std::vector<SlotInfo>&,
                                             const std::vector<uint32_t>&, const RowMatrix<double>&,
                                             int, size_t, float*);

uint64_t GroupKey(uint64_t key, int group) {
  if (group == 0) return key;
  return Mix64(key ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(group)));
}

void ReplicateSlots(const Batch& in, int groups, Batch* out) {
  CHECK_GE(groups, 1);
  const int slots = in.num_slots;
  out->num_examples = in.num_examples;
  out->num_slots = slots * groups;
  out->num_dense = in.num_dense;
  out->num_labels = in.num_labels;
  out->dense = in.dense;
  out->labels = in.labels;
  out->keys.clear();
  out->weights.clear();
  out->offsets.assign(1, 0);
  out->keys.reserve(in.keys.size() * static_cast<size_t>(groups));
  out->weights.reserve(in.weights.size() * static_cast<size_t>(groups));
  out->offsets.reserve(static_cast<size_t>(in.num_examples) * out->num_slots + 1);
  for (int b = 0; b < in.num_examples; ++b) {
    for (int g = 0; g < groups; ++g) {
      for (int s = 0; s < slots; ++s) {
        const size_t cell = static_cast<size_t>(b) * slots + s;
        for (uint32_t k = in.offsets[cell]; k < in.offsets[cell + 1]; ++k) {
          out->keys.push_back(GroupKey(in.keys[k], g));
          out->weights.push_back(in.weights[k]);
        }
        out->offsets.push_back(static_cast<uint32_t>(out->keys.size()));
      }
    }
  }
}

}  // namespace mtps
