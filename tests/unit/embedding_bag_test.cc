// Embedding pooling (worker/nn/embedding_bag.h): UniqueKeys and KeyDeduper
// (reused over batches, its table never cleared) against a map-based
// reference, PoolEmbeddings against a direct per-key computation (sum, mean,
// weighted mean, empty slots, dense tail), and PoolEmbeddingsBackward via the
// adjoint identity <dOut, Pool(E)> = <Backward(dOut), E>.

#include "worker/nn/eigen.h"

#include "worker/nn/embedding_bag.h"

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

// The reference: distinct keys in first-appearance order and each key's rank,
// by a std::map.
void ExpectDeduplicated(const std::vector<uint64_t>& keys, const std::vector<uint64_t>& unique,
                        const std::vector<uint32_t>& index) {
  std::map<uint64_t, uint32_t> first;
  std::vector<uint64_t> expected_unique;
  std::vector<uint32_t> expected_index;
  for (uint64_t k : keys) {
    const auto it = first.emplace(k, static_cast<uint32_t>(expected_unique.size())).first;
    if (it->second == expected_unique.size()) expected_unique.push_back(k);
    expected_index.push_back(it->second);
  }
  ASSERT_EQ(unique, expected_unique);
  ASSERT_EQ(index, expected_index);
}

TEST(UniqueKeysTest, SmallExample) {
  const std::vector<uint64_t> keys = {7, 3, 7, 9, 3, 3, 0};
  std::vector<uint64_t> unique = {99};  // replaced, not appended to
  std::vector<uint32_t> index;
  UniqueKeys(keys, &unique, &index);
  EXPECT_EQ(unique, (std::vector<uint64_t>{7, 3, 9, 0}));
  EXPECT_EQ(index, (std::vector<uint32_t>{0, 1, 0, 2, 1, 1, 3}));
}

TEST(UniqueKeysTest, Empty) {
  std::vector<uint64_t> unique = {1};
  std::vector<uint32_t> index = {5};
  UniqueKeys({}, &unique, &index);
  EXPECT_TRUE(unique.empty());
  EXPECT_TRUE(index.empty());
}

TEST(UniqueKeysTest, ManyRandomKeysMatchReference) {
  std::mt19937_64 rng(1);
  // 500 distinct 64-bit keys (including ones that collide in the low bits),
  // drawn 20000 times.
  std::vector<uint64_t> pool;
  for (int i = 0; i < 250; ++i) pool.push_back(rng());
  for (int i = 0; i < 250; ++i) pool.push_back(static_cast<uint64_t>(i) << 40);
  std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
  std::vector<uint64_t> keys(20000);
  for (uint64_t& k : keys) k = pool[pick(rng)];

  std::vector<uint64_t> unique;
  std::vector<uint32_t> index;
  UniqueKeys(keys, &unique, &index);

  std::map<uint64_t, uint32_t> first;  // key -> rank of first appearance
  std::vector<uint64_t> expected_unique;
  for (uint64_t k : keys) {
    if (first.emplace(k, static_cast<uint32_t>(expected_unique.size())).second) {
      expected_unique.push_back(k);
    }
  }
  EXPECT_EQ(unique, expected_unique);
  ASSERT_EQ(index.size(), keys.size());
  for (size_t j = 0; j < keys.size(); ++j) EXPECT_EQ(index[j], first[keys[j]]) << j;
}

// A batch of 4 examples, 3 slots (sum, mean, mean), 2 dense features;
// example 1 has no keys in slot 1, example 3 none in slot 0 or slot 2; keys
// repeat across and within examples; slot 2 has weighted keys.
struct Fixture {
  Batch batch;
  std::vector<SlotInfo> slots = {
      {"a", Pooling::kSum}, {"b", Pooling::kMean}, {"c", Pooling::kMean}};
  std::vector<uint64_t> unique;
  std::vector<uint32_t> index;
  int dim = 3;
  std::vector<float> emb;

  Fixture() {
    // cells[b][s] = list of (key, weight)
    const std::vector<std::vector<std::vector<std::pair<uint64_t, float>>>> cells = {
        {{{10, 1}}, {{20, 1}, {21, 1}}, {{30, 0.5f}, {31, 2}}},
        {{{11, 1}}, {}, {{30, 1}, {30, 3}}},
        {{{10, 1}}, {{21, 1}, {22, 1}, {20, 1}}, {{32, 1.5f}}},
        {{}, {{22, 1}}, {}},
    };
    batch.num_examples = 4;
    batch.num_slots = 3;
    batch.num_dense = 2;
    batch.num_labels = 0;
    batch.offsets = {0};
    for (const auto& example : cells) {
      for (const auto& cell : example) {
        for (const auto& [key, weight] : cell) {
          batch.keys.push_back(key);
          batch.weights.push_back(weight);
        }
        batch.offsets.push_back(static_cast<uint32_t>(batch.keys.size()));
      }
    }
    batch.dense = {0.5f, -1, 2, 3, -4, 5, 6.5f, 7};
    UniqueKeys(batch.keys, &unique, &index);
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<float> u(-1, 1);
    emb.resize(unique.size() * dim);
    for (float& e : emb) e = u(rng);
  }

  // Embedding row of a key, looked up by key (not through index).
  const float* Row(uint64_t key) const {
    for (size_t u = 0; u < unique.size(); ++u) {
      if (unique[u] == key) return emb.data() + u * dim;
    }
    ADD_FAILURE() << "no key " << key;
    return emb.data();
  }
};

template <typename T>
void CheckPooling() {
  Fixture f;
  RowMatrix<T> input;
  PoolEmbeddings<T>(f.batch, f.slots, f.index, f.emb.data(), f.dim, &input);
  ASSERT_EQ(input.rows(), 4);
  ASSERT_EQ(input.cols(), 3 * 3 + 2);
  for (int b = 0; b < 4; ++b) {
    for (int s = 0; s < 3; ++s) {
      const uint32_t begin = f.batch.offsets[b * 3 + s], end = f.batch.offsets[b * 3 + s + 1];
      for (int d = 0; d < f.dim; ++d) {
        double sum = 0, weight_sum = 0;
        for (uint32_t j = begin; j < end; ++j) {
          sum += f.batch.weights[j] * f.Row(f.batch.keys[j])[d];
          weight_sum += f.batch.weights[j];
        }
        double expected = sum;
        if (f.slots[s].pooling == Pooling::kMean) expected = end > begin ? sum / weight_sum : 0;
        EXPECT_NEAR(input(b, s * f.dim + d), expected, 1e-6) << b << "," << s << "," << d;
      }
    }
    EXPECT_EQ(input(b, 9), f.batch.dense[b * 2]);
    EXPECT_EQ(input(b, 10), f.batch.dense[b * 2 + 1]);
  }
  // Spot values written out: example 1 slot 2 is (1*e30 + 3*e30) / 4 = e30;
  // example 3 slot 0 (no keys) is zero.
  for (int d = 0; d < f.dim; ++d) {
    EXPECT_NEAR(input(1, 2 * f.dim + d), f.Row(30)[d], 1e-6);
    EXPECT_EQ(input(3, d), 0);
    EXPECT_EQ(input(3, 2 * f.dim + d), 0);
  }
}

// One KeyDeduper over batches whose distinct-key counts jump up and down, so
// its table is reused (stale entries of earlier batches must read as empty),
// sized from the previous batch and grown within a batch; keys include ones
// equal in their low or high bits and runs of small integers.
TEST(KeyDeduperTest, ReusedAcrossBatchesMatchesReference) {
  std::mt19937_64 rng(7);
  KeyDeduper deduper;
  std::vector<uint64_t> unique = {5};
  std::vector<uint32_t> index;
  const int kDistinct[] = {3, 3000, 10, 1, 20000, 50, 0, 700, 700, 5000, 2};
  for (int batch = 0; batch < 11; ++batch) {
    const int distinct = kDistinct[batch];
    std::vector<uint64_t> pool;
    for (int i = 0; i < distinct; ++i) {
      switch (i % 4) {
        case 0:
          pool.push_back(rng());
          break;
        case 1:
          pool.push_back(static_cast<uint64_t>(i) << 40);
          break;
        case 2:
          pool.push_back(static_cast<uint64_t>(i));
          break;
        default:
          pool.push_back(rng() | 0xffffffff00000000ULL);
          break;
      }
    }
    std::vector<uint64_t> keys;
    if (distinct > 0) {
      std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
      keys.resize(3 * distinct + batch);
      for (uint64_t& k : keys) k = pool[pick(rng)];
    }
    deduper.Unique(keys, &unique, &index);
    SCOPED_TRACE("batch " + std::to_string(batch));
    ExpectDeduplicated(keys, unique, index);
    // Every key of a batch, each once: the table fills to the limit.
    deduper.Unique(pool, &unique, &index);
    ExpectDeduplicated(pool, unique, index);
  }
}

// Entries are never cleared: what one call leaves (the same keys in the same
// entries, with other positions) must read as empty to the next.
TEST(KeyDeduperTest, EntriesLeftByEarlierCallsReadAsEmpty) {
  // Two disjoint sets of 10 distinct keys: every call below sizes its table
  // the same (32 entries), so entries of one call are where the next looks.
  std::vector<uint64_t> keys, others;
  for (uint64_t k = 1; k <= 10; ++k) {
    keys.push_back(k * 0x1234567ULL);
    others.push_back(k * 0x7654321ULL + 1);
  }
  const std::vector<uint64_t> reversed(keys.rbegin(), keys.rend());
  std::vector<uint64_t> mixed;
  for (size_t i = 0; i < keys.size(); ++i) {
    mixed.push_back(others[i]);
    mixed.push_back(reversed[i]);
  }
  KeyDeduper deduper;
  std::vector<uint64_t> unique;
  std::vector<uint32_t> index;
  const std::vector<const std::vector<uint64_t>*> batches = {&keys, &reversed, &others,
                                                             &keys, &mixed,    &mixed};
  for (const std::vector<uint64_t>* batch : batches) {
    deduper.Unique(*batch, &unique, &index);
    ExpectDeduplicated(*batch, unique, index);
  }
}

TEST(PoolEmbeddingsTest, MatchesDirectComputationFloat) { CheckPooling<float>(); }
TEST(PoolEmbeddingsTest, MatchesDirectComputationDouble) { CheckPooling<double>(); }

TEST(PoolEmbeddingsTest, BackwardIsTheAdjoint) {
  Fixture f;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  RowMatrix<double> d_out(4, 3 * 3 + 2);
  for (int i = 0; i < d_out.size(); ++i) d_out.data()[i] = u(rng);
  std::vector<float> emb_grad(f.emb.size(), std::nanf(""));  // must be overwritten
  PoolEmbeddingsBackward<double>(f.batch, f.slots, f.index, d_out, f.dim, f.unique.size(),
                                 emb_grad.data());
  // Pooling is linear in the embeddings (the dense tail is a constant), so
  // <dOut, Pool(E)> restricted to the embedding columns = <Backward(dOut), E>
  // for every E; try a few.
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<float> e(f.emb.size());
    for (float& x : e) x = static_cast<float>(u(rng));
    RowMatrix<double> pooled;
    PoolEmbeddings<double>(f.batch, f.slots, f.index, e.data(), f.dim, &pooled);
    const double lhs = d_out.leftCols(9).cwiseProduct(pooled.leftCols(9)).sum();
    double rhs = 0;
    for (size_t i = 0; i < e.size(); ++i) rhs += static_cast<double>(emb_grad[i]) * e[i];
    EXPECT_NEAR(lhs, rhs, 1e-5 * (1 + std::abs(lhs)));
  }
  // Each unique row's gradient on its own: the rows of key 30 (only in the
  // weighted-mean slot 2 of examples 0 and 1).
  size_t row30 = 0;
  while (f.unique[row30] != 30) ++row30;
  for (int d = 0; d < f.dim; ++d) {
    const double expected = d_out(0, 6 + d) * 0.5 / 2.5 + d_out(1, 6 + d) * (1 + 3) / 4.0;
    EXPECT_NEAR(emb_grad[row30 * f.dim + d], expected, 1e-6);
  }
}

TEST(PoolEmbeddingsTest, FloatBackwardMatchesDouble) {
  Fixture f;
  RowMatrix<double> d_out = RowMatrix<double>::Random(4, 11);
  RowMatrix<float> d_out_f = d_out.cast<float>();
  std::vector<float> g(f.emb.size()), g_f(f.emb.size());
  PoolEmbeddingsBackward<double>(f.batch, f.slots, f.index, d_out, f.dim, f.unique.size(),
                                 g.data());
  PoolEmbeddingsBackward<float>(f.batch, f.slots, f.index, d_out_f, f.dim, f.unique.size(),
                                g_f.data());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], g_f[i], 1e-5);
}

}  // namespace
}  // namespace mtps

namespace mtps {
namespace {

TEST(ReplicateSlotsTest, LaysOutGroupsWithTheirOwnKeys) {
  // Two examples, two slots; example 1 slot 0 empty, slot 1 multi-valued.
  Batch in;
  in.num_examples = 2;
  in.num_slots = 2;
  in.num_dense = 1;
  in.num_labels = 1;
  in.keys = {10, 20, 30, 31};
  in.weights = {1, 1, 2, 3};
  in.offsets = {0, 1, 2, 2, 4};
  in.dense = {0.5f, 1.5f};
  in.labels = {1, 0};
  Batch out;
  ReplicateSlots(in, 2, &out);
  EXPECT_EQ(out.num_slots, 4);
  EXPECT_EQ(out.num_examples, 2);
  EXPECT_EQ(out.dense, in.dense);
  EXPECT_EQ(out.labels, in.labels);
  const uint64_t g10 = GroupKey(10, 1), g20 = GroupKey(20, 1), g30 = GroupKey(30, 1),
                 g31 = GroupKey(31, 1);
  EXPECT_EQ(out.keys, (std::vector<uint64_t>{10, 20, g10, g20, 30, 31, g30, g31}));
  EXPECT_EQ(out.weights, (std::vector<float>{1, 1, 1, 1, 2, 3, 2, 3}));
  EXPECT_EQ(out.offsets, (std::vector<uint32_t>{0, 1, 2, 3, 4, 4, 6, 6, 8}));
  // Group keys are new keys, distinct per group; group 0 keeps the key.
  EXPECT_EQ(GroupKey(10, 0), 10u);
  EXPECT_NE(g10, 10u);
  EXPECT_NE(GroupKey(10, 2), g10);
  // One group is a copy.
  Batch same;
  ReplicateSlots(in, 1, &same);
  EXPECT_EQ(same.keys, in.keys);
  EXPECT_EQ(same.offsets, in.offsets);
}

}  // namespace
}  // namespace mtps
