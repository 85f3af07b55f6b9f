// Tests of DenseStore: Init-once, Adam and Adagrad against their formulas over
// several steps, and the errors of a bad push.
#include "ps/table/dense_store.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

std::vector<float> RandomVector(size_t n, uint64_t seed, float sd) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

void ExpectClose(const float* got, const std::vector<double>& want, double tol, int step) {
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::fabs(want[i])))
        << "element " << i << " after step " << step;
  }
}

double MaxChange(const std::vector<double>& w, const std::vector<float>& init) {
  double change = 0.0;
  for (size_t i = 0; i < w.size(); ++i) change = std::max(change, std::fabs(w[i] - init[i]));
  return change;
}

// Runs `steps` pushes of random gradients through a store built from
// `optimizer` and through the textbook Adam in double, comparing each step.
void CheckAdam(const config::DenseOptimizer& optimizer, double lr, double b1, double b2,
               double eps) {
  const size_t n = 37;  // not a multiple of any vector width
  const std::vector<float> init = RandomVector(n, 1, 0.1f);
  DenseStore store(optimizer);
  ASSERT_TRUE(store.Init(init.data(), n));
  std::vector<double> w(init.begin(), init.end()), m(n, 0.0), v(n, 0.0);
  for (int t = 1; t <= 8; ++t) {
    const std::vector<float> g = RandomVector(n, 100 + t, 1.0f);
    ASSERT_TRUE(store.Push(g.data(), n).ok());
    for (size_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * double(g[i]) * g[i];
      const double m_hat = m[i] / (1 - std::pow(b1, t));
      const double v_hat = v[i] / (1 - std::pow(b2, t));
      w[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    EXPECT_EQ(store.steps(), t);
    ExpectClose(store.values(), w, 1e-5, t);
  }
  // The parameters moved by about lr per step, far more than the tolerance,
  // so the comparison above is not vacuous.
  EXPECT_GT(MaxChange(w, init), lr);
}

TEST(DenseStoreTest, InitOnlyOnce) {
  config::DenseOptimizer optimizer;
  DenseStore store(optimizer);
  EXPECT_FALSE(store.initialized());
  EXPECT_EQ(store.size(), 0u);
  const std::vector<float> first = {1.0f, 2.0f, 3.0f};
  const std::vector<float> second = {9.0f, 9.0f, 9.0f, 9.0f};
  EXPECT_TRUE(store.Init(first.data(), first.size()));
  EXPECT_TRUE(store.initialized());
  EXPECT_FALSE(store.Init(second.data(), second.size()));
  ASSERT_EQ(store.size(), 3u);
  EXPECT_EQ(std::vector<float>(store.values(), store.values() + 3), first);
}

TEST(DenseStoreTest, AdamIsTheDefault) {
  // The proto defaults of Adam: lr 0.001, beta1 0.9, beta2 0.999, eps 1e-8.
  CheckAdam(config::DenseOptimizer(), 0.001, 0.9, 0.999, 1e-8);
}

TEST(DenseStoreTest, AdamMatchesFormula) {
  config::DenseOptimizer optimizer;
  config::Adam* adam = optimizer.mutable_adam();
  adam->set_learning_rate(0.01f);
  adam->set_beta1(0.8f);
  adam->set_beta2(0.99f);
  adam->set_epsilon(1e-3f);
  CheckAdam(optimizer, 0.01f, 0.8f, 0.99f, 1e-3f);
}

TEST(DenseStoreTest, AdagradMatchesFormula) {
  config::DenseOptimizer optimizer;
  optimizer.mutable_adagrad()->set_learning_rate(0.05f);
  optimizer.mutable_adagrad()->set_initial_accumulator(0.3f);
  const size_t n = 21;
  const std::vector<float> init = RandomVector(n, 2, 0.1f);
  DenseStore store(optimizer);
  ASSERT_TRUE(store.Init(init.data(), n));
  std::vector<double> w(init.begin(), init.end()), acc(n, 0.3f);
  for (int t = 1; t <= 8; ++t) {
    const std::vector<float> g = RandomVector(n, 200 + t, 1.0f);
    ASSERT_TRUE(store.Push(g.data(), n).ok());
    for (size_t i = 0; i < n; ++i) {
      acc[i] += double(g[i]) * g[i];
      w[i] -= 0.05f * g[i] / std::sqrt(acc[i]);
    }
    ExpectClose(store.values(), w, 1e-5, t);
  }
  EXPECT_GT(MaxChange(w, init), 0.05);
}

TEST(DenseStoreTest, PushOfWrongSizeIsInvalidArgument) {
  DenseStore store{config::DenseOptimizer()};
  const std::vector<float> init = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f};
  const std::vector<float> grads(5, 1.0f);

  Status s = store.Push(grads.data(), grads.size());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("initialized"), std::string::npos) << s;

  ASSERT_TRUE(store.Init(init.data(), init.size()));
  s = store.Push(grads.data(), grads.size());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("5"), std::string::npos) << s;
  EXPECT_NE(s.message().find("7"), std::string::npos) << s;
  // A rejected push changes nothing.
  EXPECT_EQ(store.steps(), 0);
  EXPECT_EQ(std::vector<float>(store.values(), store.values() + 7), init);
}

TEST(DenseStoreTest, ValidateRejectsBadOptimizers) {
  EXPECT_TRUE(ValidateDenseOptimizer(config::DenseOptimizer()).ok());
  config::DenseOptimizer adam;
  adam.mutable_adam()->set_beta1(1.0f);
  Status s = ValidateDenseOptimizer(adam);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("beta1"), std::string::npos) << s;
  config::DenseOptimizer adagrad;
  adagrad.mutable_adagrad()->set_initial_accumulator(-1.0f);
  s = ValidateDenseOptimizer(adagrad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("initial_accumulator"), std::string::npos) << s;
}

}  // namespace
}  // namespace mtps
