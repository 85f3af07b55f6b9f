// PoolEmbeddings at the embedding widths it has fixed-width loops for (4, 8,
// 16, 32) and at widths it does not (3, 12, 64): every pooled value against a
// direct double computation from the keys, weights and embedding rows.
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "worker/nn/embedding_bag.h"

namespace mtps {
namespace {

class PoolEmbeddingsDimTest : public ::testing::TestWithParam<int> {};

TEST_P(PoolEmbeddingsDimTest, MatchesDirectComputation) {
  const int dim = GetParam();
  const int num_examples = 37, num_slots = 5, num_dense = 3;
  const std::vector<SlotInfo> slots = {{"a", Pooling::kSum},
                                       {"b", Pooling::kMean},
                                       {"c", Pooling::kSum},
                                       {"d", Pooling::kMean},
                                       {"e", Pooling::kMean}};
  std::mt19937_64 rng(static_cast<uint64_t>(dim));
  std::uniform_int_distribution<int> count(0, 6);
  std::uniform_int_distribution<uint64_t> key(1, 40);  // repeats within and across examples
  std::uniform_real_distribution<float> value(-1, 1);
  Batch batch;
  batch.num_examples = num_examples;
  batch.num_slots = num_slots;
  batch.num_dense = num_dense;
  batch.offsets = {0};
  for (int b = 0; b < num_examples; ++b) {
    for (int s = 0; s < num_slots; ++s) {
      const int n = count(rng);
      for (int k = 0; k < n; ++k) {
        batch.keys.push_back(key(rng) * 1000 + static_cast<uint64_t>(s));
        batch.weights.push_back(s == 0 ? 1.0f : 0.25f + 3 * (value(rng) + 1));
      }
      batch.offsets.push_back(static_cast<uint32_t>(batch.keys.size()));
    }
    for (int d = 0; d < num_dense; ++d) batch.dense.push_back(value(rng));
  }
  std::vector<uint64_t> unique;
  std::vector<uint32_t> index;
  UniqueKeys(batch.keys, &unique, &index);
  // Embedding rows by key, so the reference does not go through index.
  std::map<uint64_t, std::vector<float>> rows;
  std::vector<float> emb(unique.size() * dim);
  for (size_t u = 0; u < unique.size(); ++u) {
    for (int d = 0; d < dim; ++d) emb[u * dim + d] = value(rng);
    rows[unique[u]].assign(emb.begin() + u * dim, emb.begin() + (u + 1) * dim);
  }

  RowMatrix<float> input;
  PoolEmbeddings<float>(batch, slots, index, emb.data(), dim, &input);
  ASSERT_EQ(input.rows(), num_examples);
  ASSERT_EQ(input.cols(), num_slots * dim + num_dense);
  for (int b = 0; b < num_examples; ++b) {
    for (int s = 0; s < num_slots; ++s) {
      const size_t cell = static_cast<size_t>(b) * num_slots + s;
      for (int d = 0; d < dim; ++d) {
        double sum = 0, weight_sum = 0;
        for (uint32_t j = batch.offsets[cell]; j < batch.offsets[cell + 1]; ++j) {
          sum += static_cast<double>(batch.weights[j]) * rows.at(batch.keys[j])[d];
          weight_sum += batch.weights[j];
        }
        const double expected =
            slots[s].pooling == Pooling::kMean && weight_sum > 0 ? sum / weight_sum : sum;
        EXPECT_NEAR(input(b, s * dim + d), expected, 1e-5)
            << "dim " << dim << " example " << b << " slot " << s << " d " << d;
      }
    }
    for (int d = 0; d < num_dense; ++d) {
      EXPECT_EQ(input(b, num_slots * dim + d), batch.dense[b * num_dense + d]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, PoolEmbeddingsDimTest, ::testing::Values(3, 4, 8, 12, 16, 32, 64));

}  // namespace
}  // namespace mtps
