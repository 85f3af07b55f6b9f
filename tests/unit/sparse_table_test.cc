// Tests of SparseTable: initial values, Pull without insertion, SGD, Adagrad,
// Adam (the table's or the row's step count) and FTRL-Proximal against direct double
// computations, the empty-key sentinel as a real key, and growth.
#include "ps/table/sparse_table.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

SparseTableOptions MakeOptions(int dim, uint64_t seed = 7) {
  SparseTableOptions o;
  o.dim = dim;
  o.init_scale = 0.05f;
  o.seed = seed;
  o.optimizer.mutable_adagrad()->set_learning_rate(0.1f);
  o.optimizer.mutable_adagrad()->set_initial_accumulator(0.2f);
  return o;
}

std::vector<uint64_t> RandomKeys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> keys(n);
  for (auto& k : keys) k = rng();
  return keys;
}

// Direct Adagrad in double, one row per key, for comparison.
struct ReferenceRow {
  std::vector<double> w;
  std::vector<double> acc;
};

class ReferenceAdagrad {
 public:
  explicit ReferenceAdagrad(const SparseTableOptions& o) : o_(o) {}
  ReferenceRow& Row(uint64_t key) {
    auto it = rows_.find(key);
    if (it == rows_.end()) {
      ReferenceRow r;
      for (int j = 0; j < o_.dim; ++j) {
        r.w.push_back(InitialValue(o_.seed, key, j, o_.init_scale));
        r.acc.push_back(o_.optimizer.adagrad().initial_accumulator());
      }
      it = rows_.emplace(key, r).first;
    }
    return it->second;
  }
  void Push(const std::vector<uint64_t>& keys, const std::vector<float>& grads) {
    for (size_t i = 0; i < keys.size(); ++i) {
      ReferenceRow& r = Row(keys[i]);
      for (int j = 0; j < o_.dim; ++j) {
        const double g = grads[i * o_.dim + j];
        r.acc[j] += g * g;
        r.w[j] -= o_.optimizer.adagrad().learning_rate() * g / std::sqrt(r.acc[j]);
      }
    }
  }
  const std::map<uint64_t, ReferenceRow>& rows() const { return rows_; }

 private:
  SparseTableOptions o_;
  std::map<uint64_t, ReferenceRow> rows_;
};

TEST(InitialValueTest, UniformInRangeAndDependsOnEverything) {
  const float scale = 0.5f;
  float lo = 1.0f, hi = -1.0f;
  double sum = 0.0;
  const int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const float v = InitialValue(3, static_cast<uint64_t>(i), i % 16, scale);
    ASSERT_GE(v, -scale);
    ASSERT_LE(v, scale);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  EXPECT_LT(lo, -0.99f * scale);
  EXPECT_GT(hi, 0.99f * scale);
  EXPECT_NEAR(sum / kN, 0.0, 0.01);  // mean of U[-0.5,0.5] over 1e5 draws: sd ~ 0.0009
  // Seed, key and element each change the value.
  EXPECT_NE(InitialValue(1, 42, 0, scale), InitialValue(2, 42, 0, scale));
  EXPECT_NE(InitialValue(1, 42, 0, scale), InitialValue(1, 43, 0, scale));
  EXPECT_NE(InitialValue(1, 42, 0, scale), InitialValue(1, 42, 1, scale));
  EXPECT_EQ(InitialValue(1, 42, 3, scale), InitialValue(1, 42, 3, scale));
  EXPECT_EQ(InitialValue(1, 42, 3, 0.0f), 0.0f);
}

TEST(SparseTableTest, PullOfNewKeysIsInitialValueWhateverTheOrder) {
  const SparseTableOptions o = MakeOptions(5);
  std::vector<uint64_t> keys = RandomKeys(1000, 11);
  keys.push_back(SparseTable::kEmptyKey);
  keys.push_back(~uint64_t{0});
  keys.push_back(1);

  SparseTable a(o);
  EXPECT_EQ(a.dim(), 5);
  std::vector<float> out_a(keys.size() * 5);
  a.Pull(keys.data(), keys.size(), /*create_missing=*/true, out_a.data());
  EXPECT_EQ(a.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int j = 0; j < 5; ++j) {
      ASSERT_EQ(out_a[i * 5 + j], InitialValue(o.seed, keys[i], j, o.init_scale))
          << "key " << keys[i] << " element " << j;
    }
  }

  // Another table fed the keys in another order and in two batches answers the
  // same row per key.
  std::vector<uint64_t> shuffled = keys;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(5));
  SparseTable b(o);
  std::vector<float> out_b(shuffled.size() * 5);
  const size_t half = shuffled.size() / 2;
  b.Pull(shuffled.data(), half, true, out_b.data());
  b.Pull(shuffled.data() + half, shuffled.size() - half, true, out_b.data() + half * 5);
  std::map<uint64_t, std::vector<float>> by_key;
  for (size_t i = 0; i < keys.size(); ++i) {
    by_key[keys[i]].assign(out_a.begin() + i * 5, out_a.begin() + (i + 1) * 5);
  }
  for (size_t i = 0; i < shuffled.size(); ++i) {
    std::vector<float> row(out_b.begin() + i * 5, out_b.begin() + (i + 1) * 5);
    ASSERT_EQ(row, by_key[shuffled[i]]) << "key " << shuffled[i];
  }

  // Pulling again returns the stored rows and inserts nothing.
  std::vector<float> again(keys.size() * 5);
  a.Pull(keys.data(), keys.size(), true, again.data());
  EXPECT_EQ(again, out_a);
  EXPECT_EQ(a.size(), keys.size());
}

TEST(SparseTableTest, PullWithoutCreateDoesNotInsert) {
  const SparseTableOptions o = MakeOptions(4);
  SparseTable table(o);
  const std::vector<uint64_t> keys = {5, 6, SparseTable::kEmptyKey, 5};
  std::vector<float> out(keys.size() * 4);
  table.Pull(keys.data(), keys.size(), /*create_missing=*/false, out.data());
  EXPECT_EQ(table.size(), 0u);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(out[i * 4 + j], InitialValue(o.seed, keys[i], j, o.init_scale));
    }
  }

  // Once a row exists and has been trained, a non-creating Pull returns it
  // rather than the initial value, and still inserts no other key.
  const uint64_t trained = 6;
  const std::vector<float> grad = {1.0f, -1.0f, 0.5f, 2.0f};
  table.Push(&trained, 1, grad.data());
  ASSERT_EQ(table.size(), 1u);
  table.Pull(keys.data(), keys.size(), false, out.data());
  EXPECT_EQ(table.size(), 1u);
  for (int j = 0; j < 4; ++j) {
    EXPECT_NE(out[1 * 4 + j], InitialValue(o.seed, trained, j, o.init_scale));
    EXPECT_EQ(out[0 * 4 + j], InitialValue(o.seed, 5, j, o.init_scale));
  }
}

TEST(SparseTableTest, PushAppliesAdagradOverSeveralStepsWithRepeatedKeys) {
  const SparseTableOptions o = MakeOptions(8);
  SparseTable table(o);
  ReferenceAdagrad ref(o);
  std::mt19937_64 rng(99);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::vector<uint64_t> pool = {
      1, 2, 3, 0x8000000000000000ULL, SparseTable::kEmptyKey, ~uint64_t{0}};
  for (int step = 0; step < 6; ++step) {
    // Every batch repeats some keys (key 1 twice and, every other step, the
    // sentinel twice), in varying order.
    std::vector<uint64_t> keys = {1, pool[step % pool.size()], 1, 2};
    if (step % 2 == 0) keys.insert(keys.end(), {SparseTable::kEmptyKey, SparseTable::kEmptyKey});
    std::vector<float> grads(keys.size() * 8);
    for (auto& g : grads) g = normal(rng);
    table.Push(keys.data(), keys.size(), grads.data());
    ref.Push(keys, grads);
  }
  ASSERT_EQ(table.size(), ref.rows().size());
  for (const auto& [key, row] : ref.rows()) {
    std::vector<float> out(8);
    table.Pull(&key, 1, false, out.data());
    for (int j = 0; j < 8; ++j) {
      EXPECT_NEAR(out[j], row.w[j], 1e-5 * (1.0 + std::fabs(row.w[j])))
          << "key " << key << " element " << j;
    }
  }
}

TEST(SparseTableTest, RepeatedKeyInOneCallIsAppliedPerOccurrence) {
  const SparseTableOptions o = MakeOptions(1);
  SparseTable table(o);
  const uint64_t keys[2] = {77, 77};
  const float grads[2] = {1.0f, 3.0f};
  table.Push(keys, 2, grads);
  float out = 0.0f;
  table.Pull(keys, 1, false, &out);
  // By hand: acc 0.2 -> 1.2 -> 10.2.
  const double w0 = InitialValue(o.seed, 77, 0, o.init_scale);
  const double expected = w0 - 0.1 * 1.0 / std::sqrt(1.2) - 0.1 * 3.0 / std::sqrt(10.2);
  EXPECT_NEAR(out, expected, 1e-6);
}

TEST(SparseTableTest, SentinelKeyIsAnOrdinaryKey) {
  const SparseTableOptions o = MakeOptions(3);
  SparseTable table(o);
  const uint64_t sentinel = SparseTable::kEmptyKey;
  const uint64_t neighbours[3] = {sentinel, 1, ~uint64_t{0}};
  std::vector<float> out(9);
  table.Pull(neighbours, 3, true, out.data());
  table.Pull(&sentinel, 1, true, out.data());
  EXPECT_EQ(table.size(), 3u);

  const float grad[3] = {0.5f, -0.25f, 1.0f};
  table.Push(&sentinel, 1, grad);
  float got[3];
  table.Pull(&sentinel, 1, false, got);
  for (int j = 0; j < 3; ++j) {
    const double acc = 0.2 + double(grad[j]) * grad[j];
    const double expected =
        InitialValue(o.seed, sentinel, j, o.init_scale) - 0.1 * grad[j] / std::sqrt(acc);
    EXPECT_NEAR(got[j], expected, 1e-6);
  }
  // The other keys were not disturbed by the sentinel's update.
  table.Pull(neighbours + 1, 2, false, out.data());
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(out[j], InitialValue(o.seed, 1, j, o.init_scale));
    EXPECT_EQ(out[3 + j], InitialValue(o.seed, ~uint64_t{0}, j, o.init_scale));
  }
  EXPECT_EQ(table.size(), 3u);
}

TEST(SparseTableTest, GrowthKeepsEveryRowIntact) {
  const SparseTableOptions o = MakeOptions(8);
  SparseTable table(o);
  const size_t kN = 200000;
  // Random keys plus a run of consecutive ones (worst case for weak hashing).
  std::vector<uint64_t> keys = RandomKeys(kN - 1000, 2024);
  for (uint64_t k = 0; k < 1000; ++k) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  ASSERT_EQ(std::unique(keys.begin(), keys.end()), keys.end());
  std::shuffle(keys.begin(), keys.end(), std::mt19937_64(1));

  // The gradient of element j of a key is a function of (key, j), so the
  // expected row after one step is known without replaying the table.
  auto grad_of = [](uint64_t key, int j) {
    return static_cast<float>(static_cast<int>((key >> (j * 4)) & 0xff) - 128) / 64.0f;
  };
  size_t last_memory = table.memory_bytes();
  const size_t kBatch = 5000;
  for (size_t begin = 0; begin < kN; begin += kBatch) {
    std::vector<float> grads(kBatch * 8);
    for (size_t i = 0; i < kBatch; ++i) {
      for (int j = 0; j < 8; ++j) grads[i * 8 + j] = grad_of(keys[begin + i], j);
    }
    table.Push(keys.data() + begin, kBatch, grads.data());
    const size_t memory = table.memory_bytes();
    EXPECT_GE(memory, last_memory);
    last_memory = memory;
  }
  ASSERT_EQ(table.size(), kN);

  std::vector<float> out(kN * 8);
  table.Pull(keys.data(), kN, /*create_missing=*/false, out.data());
  EXPECT_EQ(table.size(), kN);
  size_t bad = 0;
  for (size_t i = 0; i < kN; ++i) {
    for (int j = 0; j < 8; ++j) {
      const double g = grad_of(keys[i], j);
      const double expected =
          InitialValue(o.seed, keys[i], j, o.init_scale) - 0.1 * g / std::sqrt(0.2 + g * g);
      if (std::fabs(out[i * 8 + j] - expected) > 1e-6) ++bad;
    }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(SparseTableTest, MemoryGrowsWithRows) {
  SparseTable table(MakeOptions(16));
  const size_t empty = table.memory_bytes();
  size_t previous = empty;
  std::vector<uint64_t> keys = RandomKeys(300000, 3);
  std::vector<float> out(16 * 100000);
  for (size_t round = 0; round < 3; ++round) {
    table.Pull(keys.data() + round * 100000, 100000, true, out.data());
    const size_t memory = table.memory_bytes();
    EXPECT_GT(memory, previous) << "after " << table.size() << " rows";
    // At least the rows themselves (embedding + accumulator) and one key each.
    EXPECT_GE(memory, table.size() * (2 * 16 * sizeof(float) + sizeof(uint64_t)));
    previous = memory;
  }
}

TEST(SparseTableTest, ReserveGrowsIndexAndKeepsContents) {
  const SparseTableOptions o = MakeOptions(2);
  SparseTable table(o);
  const std::vector<uint64_t> keys = RandomKeys(100, 8);
  std::vector<float> before(200), after(200);
  table.Pull(keys.data(), keys.size(), true, before.data());
  const size_t memory = table.memory_bytes();
  table.Reserve(100000);
  EXPECT_GT(table.memory_bytes(), memory);
  table.Pull(keys.data(), keys.size(), false, after.data());
  EXPECT_EQ(before, after);
  EXPECT_EQ(table.size(), 100u);
}

// Direct double implementations of the other optimizers, one row per key,
// written from the formulas (not from common/optim/optimizer.h).
struct RefRow {
  std::vector<double> w, s1, s2;
  int64_t t = 0;
};

class ReferenceOptimizer {
 public:
  explicit ReferenceOptimizer(const SparseTableOptions& o) : o_(o) {}

  RefRow& Row(uint64_t key) {
    auto it = rows_.find(key);
    if (it != rows_.end()) return it->second;
    RefRow r;
    const config::Ftrl& f = o_.optimizer.ftrl();
    for (int j = 0; j < o_.dim; ++j) {
      const double w0 = InitialValue(o_.seed, key, j, o_.init_scale);
      r.w.push_back(w0);
      if (o_.optimizer.has_ftrl()) {
        // z such that the closed form gives w0 while n = 0.
        const double c = double(f.beta()) / f.alpha() + f.l2();
        r.s1.push_back(w0 == 0 ? 0.0 : -(c * w0 + (w0 > 0 ? 1 : -1) * double(f.l1())));
      } else {
        r.s1.push_back(0.0);
      }
      r.s2.push_back(0.0);
    }
    return rows_.emplace(key, r).first->second;
  }

  void Push(const std::vector<uint64_t>& keys, const std::vector<float>& grads) {
    ++table_step_;
    for (size_t i = 0; i < keys.size(); ++i) {
      RefRow& r = Row(keys[i]);
      ++r.t;
      for (int j = 0; j < o_.dim; ++j) {
        const double g = grads[i * o_.dim + j];
        if (o_.optimizer.has_sgd()) {
          r.w[j] -= double(o_.optimizer.sgd().learning_rate()) * g;
        } else if (o_.optimizer.has_adam()) {
          const config::Adam& a = o_.optimizer.adam();
          const double b1 = a.beta1(), b2 = a.beta2();
          r.s1[j] = b1 * r.s1[j] + (1 - b1) * g;
          r.s2[j] = b2 * r.s2[j] + (1 - b2) * g * g;
          const double t = a.step_count() == config::Adam::TABLE ? double(table_step_) : r.t;
          const double m_hat = r.s1[j] / (1 - std::pow(b1, t));
          const double v_hat = r.s2[j] / (1 - std::pow(b2, t));
          r.w[j] -= double(a.learning_rate()) * m_hat / (std::sqrt(v_hat) + double(a.epsilon()));
        } else {
          const config::Ftrl& f = o_.optimizer.ftrl();
          const double alpha = f.alpha(), beta = f.beta(), l1 = f.l1(), l2 = f.l2();
          const double n_new = r.s2[j] + g * g;
          const double sigma = (std::sqrt(n_new) - std::sqrt(r.s2[j])) / alpha;
          r.s1[j] += g - sigma * r.w[j];
          r.s2[j] = n_new;
          const double z = r.s1[j];
          if (std::fabs(z) <= l1) {
            r.w[j] = 0.0;
          } else {
            r.w[j] = -(z - (z > 0 ? l1 : -l1)) / ((beta + std::sqrt(n_new)) / alpha + l2);
          }
        }
      }
    }
  }
  const std::map<uint64_t, RefRow>& rows() const { return rows_; }

 private:
  SparseTableOptions o_;
  std::map<uint64_t, RefRow> rows_;
  int64_t table_step_ = 0;  // pushes so far
};

// Pushes 8 steps of random gradients in which keys repeat within a push and
// some keys are pushed only every other or third step (so Adam's per-row
// step counts differ), and compares every row with the reference after each
// step. Returns how many coordinates ended exactly at 0.
int CheckAgainstReference(const SparseTableOptions& o, double tol) {
  SparseTable table(o);
  ReferenceOptimizer ref(o);
  std::mt19937_64 rng(123);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // A key pulled (created) before any push starts with a fresh state too.
  const uint64_t early = 4242;
  float scratch[16];
  table.Pull(&early, 1, true, scratch);
  for (int step = 0; step < 8; ++step) {
    std::vector<uint64_t> keys = {1, 1, 2, early};
    if (step % 2 == 0) keys.insert(keys.end(), {SparseTable::kEmptyKey, SparseTable::kEmptyKey});
    if (step % 3 == 0) keys.insert(keys.end(), {~uint64_t{0}, 1, 0x8000000000000000ULL});
    std::vector<float> grads(keys.size() * o.dim);
    for (auto& g : grads) g = normal(rng);
    table.Push(keys.data(), keys.size(), grads.data());
    ref.Push(keys, grads);
    EXPECT_EQ(table.size(), ref.rows().size());
    for (const auto& [key, row] : ref.rows()) {
      std::vector<float> out(o.dim);
      table.Pull(&key, 1, false, out.data());
      for (int j = 0; j < o.dim; ++j) {
        EXPECT_NEAR(out[j], row.w[j], tol * (1.0 + std::fabs(row.w[j])))
            << "key " << key << " element " << j << " after step " << step;
      }
    }
  }
  int zeros = 0;
  for (const auto& [key, row] : ref.rows()) {
    std::vector<float> out(o.dim);
    table.Pull(&key, 1, false, out.data());
    for (int j = 0; j < o.dim; ++j) {
      if (row.w[j] == 0.0) {
        EXPECT_EQ(out[j], 0.0f) << "key " << key << " element " << j;
        ++zeros;
      }
    }
  }
  return zeros;
}

TEST(SparseOptimizerTest, SgdMatchesFormula) {
  SparseTableOptions o = MakeOptions(6);
  o.optimizer.mutable_sgd()->set_learning_rate(0.3f);
  SparseTable table(o);
  EXPECT_EQ(table.optimizer_kind(), SparseTable::OptimizerKind::kSgd);
  EXPECT_EQ(table.row_floats(), 6u);
  CheckAgainstReference(o, 1e-6);
}

TEST(SparseOptimizerTest, AdamMatchesFormulaWithPerRowStepCount) {
  SparseTableOptions o = MakeOptions(5);
  config::Adam* adam = o.optimizer.mutable_adam();
  adam->set_learning_rate(0.05f);
  adam->set_beta1(0.8f);
  adam->set_beta2(0.95f);
  adam->set_epsilon(1e-6f);
  adam->set_step_count(config::Adam::ROW);
  SparseTable table(o);
  EXPECT_EQ(table.row_floats(), 16u);  // w, m, v, t
  CheckAgainstReference(o, 2e-5);
}

TEST(SparseOptimizerTest, AdamBiasCorrectionUsesTheRowsOwnStep) {
  // Key 1 is pushed 5 times before key 2's first push: with a table-wide step
  // key 2's first update would use t = 6 and move by much less than lr.
  SparseTableOptions o = MakeOptions(1);
  o.optimizer.mutable_adam()->set_learning_rate(0.1f);
  o.optimizer.mutable_adam()->set_step_count(config::Adam::ROW);
  SparseTable table(o);
  const float g = 0.5f;
  const uint64_t one = 1, two = 2;
  for (int i = 0; i < 5; ++i) table.Push(&one, 1, &g);
  table.Push(&two, 1, &g);
  float w = 0.0f;
  table.Pull(&two, 1, false, &w);
  // At t = 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps).
  const double expected = InitialValue(o.seed, 2, 0, o.init_scale) - 0.1 * 0.5 / (0.5 + 1e-8);
  EXPECT_NEAR(w, expected, 1e-6);
}

TEST(SparseOptimizerTest, AdamMatchesFormulaWithTableStepCount) {
  SparseTableOptions o = MakeOptions(5);
  config::Adam* adam = o.optimizer.mutable_adam();
  adam->set_learning_rate(0.05f);
  adam->set_beta1(0.8f);
  adam->set_beta2(0.95f);
  adam->set_epsilon(1e-6f);
  EXPECT_EQ(adam->step_count(), config::Adam::TABLE);  // the default
  CheckAgainstReference(o, 2e-5);
}

TEST(SparseOptimizerTest, AdamTableStepCountCorrectsALateRowsFirstUpdateByTheTablesStep) {
  // As torch.optim.SparseAdam over one embedding table: key 2's first push
  // is the table's 6th, so its moments are bias-corrected with t = 6.
  SparseTableOptions o = MakeOptions(1);
  o.optimizer.mutable_adam()->set_learning_rate(0.1f);
  o.optimizer.mutable_adam()->set_step_count(config::Adam::TABLE);
  SparseTable table(o);
  const float g = 0.5f;
  const uint64_t one = 1, two = 2;
  for (int i = 0; i < 5; ++i) table.Push(&one, 1, &g);
  table.Push(&two, 1, &g);
  float w = 0.0f;
  table.Pull(&two, 1, false, &w);
  const double m_hat = 0.1 * 0.5 / (1 - std::pow(0.9, 6));
  const double v_hat = 0.001 * 0.25 / (1 - std::pow(0.999, 6));
  const double expected =
      InitialValue(o.seed, 2, 0, o.init_scale) - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8);
  EXPECT_NEAR(w, expected, 1e-6);
  // About half a learning rate at t = 6, where ROW moves by a whole one (and
  // TABLE by about 3.2 far into training, as 1 - beta^t nears 1).
  EXPECT_GT(w, InitialValue(o.seed, 2, 0, o.init_scale) - 0.06);
}

TEST(SparseOptimizerTest, FtrlMatchesFormula) {
  SparseTableOptions o = MakeOptions(4);
  config::Ftrl* f = o.optimizer.mutable_ftrl();
  f->set_alpha(0.1f);
  f->set_beta(1.0f);
  f->set_l1(0.0f);
  f->set_l2(0.5f);
  SparseTable table(o);
  EXPECT_EQ(table.row_floats(), 12u);  // w, z, n
  CheckAgainstReference(o, 1e-5);
}

TEST(SparseOptimizerTest, FtrlL1MakesExactZeros) {
  SparseTableOptions o = MakeOptions(4);
  config::Ftrl* f = o.optimizer.mutable_ftrl();
  f->set_alpha(0.5f);
  f->set_beta(0.5f);
  f->set_l1(1.5f);
  f->set_l2(0.1f);
  EXPECT_GT(CheckAgainstReference(o, 1e-5), 0);  // some coordinates sit at exactly 0
}

TEST(SparseOptimizerTest, FtrlStartsFromTheInitialValue) {
  // A new row answers InitialValue, and a zero gradient leaves it there (also
  // with beta = l2 = 0, where the closed form has no denominator yet).
  for (float beta : {1.0f, 0.0f}) {
    SparseTableOptions o = MakeOptions(3);
    o.optimizer.mutable_ftrl()->set_beta(beta);
    o.optimizer.mutable_ftrl()->set_l1(0.001f);
    SparseTable table(o);
    const uint64_t key = 99;
    const float zero[3] = {0.0f, 0.0f, 0.0f};
    table.Push(&key, 1, zero);
    float out[3];
    table.Pull(&key, 1, false, out);
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(out[j], InitialValue(o.seed, key, j, o.init_scale), 1e-6) << "beta " << beta;
    }
  }
}

TEST(SparseOptimizerTest, DefaultKindIsAdagrad) {
  // Adagrad's formula is checked by the ReferenceAdagrad tests above.
  SparseTableOptions o;
  SparseTable table(o);
  EXPECT_EQ(table.optimizer_kind(), SparseTable::OptimizerKind::kAdagrad);
  EXPECT_EQ(table.row_floats(), 2u * o.dim);
}

TEST(SparseTableTest, ValidateRejectsBadOptions) {
  EXPECT_TRUE(ValidateSparseTableOptions(MakeOptions(8)).ok());
  SparseTableOptions o = MakeOptions(0);
  Status s = ValidateSparseTableOptions(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("dim"), std::string::npos) << s;
  o = MakeOptions(8);
  o.optimizer.mutable_adagrad()->set_initial_accumulator(0.0f);
  s = ValidateSparseTableOptions(o);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("initial_accumulator"), std::string::npos) << s;
  o = MakeOptions(8);
  o.init_scale = -1.0f;
  EXPECT_FALSE(ValidateSparseTableOptions(o).ok());

  // Every other rule names its field.
  const std::vector<std::pair<std::string, std::function<void(SparseTableOptions*)>>> cases = {
      {"sgd.learning_rate", [](auto* x) { x->optimizer.mutable_sgd()->set_learning_rate(-1); }},
      {"adam.beta1", [](auto* x) { x->optimizer.mutable_adam()->set_beta1(1.0f); }},
      {"adam.beta2", [](auto* x) { x->optimizer.mutable_adam()->set_beta2(-0.1f); }},
      {"adam.epsilon", [](auto* x) { x->optimizer.mutable_adam()->set_epsilon(0); }},
      {"adam.learning_rate", [](auto* x) { x->optimizer.mutable_adam()->set_learning_rate(NAN); }},
      {"ftrl.alpha", [](auto* x) { x->optimizer.mutable_ftrl()->set_alpha(0); }},
      {"ftrl.beta", [](auto* x) { x->optimizer.mutable_ftrl()->set_beta(-1); }},
      {"ftrl.l1", [](auto* x) { x->optimizer.mutable_ftrl()->set_l1(-0.5f); }},
      {"ftrl.l2", [](auto* x) { x->optimizer.mutable_ftrl()->set_l2(INFINITY); }},
      {"admission_min_count", [](auto* x) { x->admission_min_count = -1; }},
      {"admission_min_count", [](auto* x) { x->admission_min_count = 70000; }},
      {"evict_after_steps", [](auto* x) { x->evict_after_steps = -3; }},
      {"evict_after_steps", [](auto* x) { x->evict_after_steps = int64_t{1} << 31; }},
      {"max_rows", [](auto* x) { x->max_rows = -1; }},
      {"max_rows", [](auto* x) { x->max_rows = int64_t{1} << 32; }},
  };
  for (const auto& [field, mutate] : cases) {
    SparseTableOptions bad = MakeOptions(8);
    mutate(&bad);
    s = ValidateSparseTableOptions(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s;
  }
  SparseTableOptions good = MakeOptions(8);
  good.optimizer.mutable_ftrl()->set_beta(0);
  good.admission_min_count = 65535;
  good.evict_after_steps = (int64_t{1} << 31) - 1;
  good.max_rows = 5;
  EXPECT_TRUE(ValidateSparseTableOptions(good).ok());
}

}  // namespace
}  // namespace mtps
