// Metrics (common/eval/metrics.h): Auc against a brute-force pairwise count on
// random data with many tied scores, the perfect/inverted/constant/one-class
// cases, and LogLoss against the direct formula with clipping.
#include "common/eval/metrics.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

// O(n^2): the fraction of (positive, negative) pairs with the positive scored
// higher, ties counting one half.
double BruteForceAuc(const std::vector<float>& scores, const std::vector<float>& labels) {
  double wins = 0, pairs = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (labels[i] <= 0.5f) continue;
    for (size_t j = 0; j < scores.size(); ++j) {
      if (labels[j] > 0.5f) continue;
      pairs += 1;
      if (scores[i] > scores[j]) wins += 1;
      if (scores[i] == scores[j]) wins += 0.5;
    }
  }
  return wins / pairs;
}

TEST(AucTest, MatchesBruteForceWithManyTies) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    const int n = 50 + 40 * trial;
    std::vector<float> scores(n), labels(n);
    for (int i = 0; i < n; ++i) {
      // Scores rounded to one decimal (11 distinct values: many ties), and
      // correlated with the label so the AUC is far from 0.5.
      const float y = u(rng) < 0.3f ? 1.0f : 0.0f;
      scores[i] = std::round(std::min(1.0f, 0.7f * u(rng) + 0.3f * y) * 10) / 10;
      labels[i] = y;
    }
    const double expected = BruteForceAuc(scores, labels);
    EXPECT_NEAR(Auc(scores, labels), expected, 1e-12) << "trial " << trial;
    EXPECT_GT(expected, 0.6);  // the data is informative, ties or not
  }
}

TEST(AucTest, SpecialCases) {
  EXPECT_DOUBLE_EQ(Auc({0.1f, 0.2f, 0.8f, 0.9f}, {0, 0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(Auc({0.9f, 0.8f, 0.2f, 0.1f}, {0, 0, 1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(Auc({0.5f, 0.5f, 0.5f, 0.5f}, {0, 1, 0, 1}), 0.5);
  // One tie among 2 x 2 pairs: (1 + 1 + 1 + 0.5) / 4.
  EXPECT_DOUBLE_EQ(Auc({0.1f, 0.4f, 0.4f, 0.9f}, {0, 0, 1, 1}), 0.875);
  EXPECT_TRUE(std::isnan(Auc({0.1f, 0.9f}, {1, 1})));
  EXPECT_TRUE(std::isnan(Auc({0.1f, 0.9f}, {0, 0})));
  EXPECT_TRUE(std::isnan(Auc({}, {})));
  EXPECT_TRUE(std::isnan(Auc({0.1f, std::nanf("")}, {0, 1})));
}

TEST(LogLossTest, MatchesDirectFormula) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<float> u(0.01f, 0.99f);
  std::vector<float> scores(100), labels(100);
  double expected = 0;
  for (int i = 0; i < 100; ++i) {
    scores[i] = u(rng);
    labels[i] = i % 3 == 0 ? 1.0f : 0.0f;
    expected -= labels[i] * std::log(static_cast<double>(scores[i])) +
                (1 - labels[i]) * std::log(1 - static_cast<double>(scores[i]));
  }
  EXPECT_NEAR(LogLoss(scores, labels), expected / 100, 1e-12);
}

TEST(LogLossTest, ClipsScores) {
  // A confident miss costs -log(1e-7), not infinity.
  EXPECT_NEAR(LogLoss({0.0f}, {1}), -std::log(1e-7), 1e-9);
  EXPECT_NEAR(LogLoss({1.0f}, {0}), -std::log(1e-7), 1e-6);
  EXPECT_NEAR(LogLoss({1.0f, 0.0f}, {1, 0}), -std::log(1 - 1e-7), 1e-12);
  EXPECT_TRUE(std::isnan(LogLoss({}, {})));
}

}  // namespace
}  // namespace mtps

namespace mtps {
namespace {

TEST(ScoreHistogramTest, AgreesWithExactAucAndLogLoss) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<float> scores, labels;
  for (int i = 0; i < 20000; ++i) {
    const bool y = (rng() % 10) < 3;
    // Positives score higher on average; logits spread over [-12, 4].
    const double logit = -4.0 + (y ? 1.5 : 0.0) + 2.5 * noise(rng);
    scores.push_back(static_cast<float>(1.0 / (1.0 + std::exp(-logit))));
    labels.push_back(y ? 1.0f : 0.0f);
  }
  ScoreHistogram h(1 << 20);
  for (size_t i = 0; i < scores.size(); ++i) h.Add(scores[i], labels[i]);
  EXPECT_EQ(h.examples(), 20000);
  EXPECT_NEAR(h.Auc(), Auc(scores, labels), 1e-5);
  EXPECT_NEAR(h.LogLoss(), LogLoss(scores, labels), 1e-9);
  // Few bins: ties within a bin count one half, so AUC moves toward 0.5 but stays close.
  ScoreHistogram coarse(16);
  for (size_t i = 0; i < scores.size(); ++i) coarse.Add(scores[i], labels[i]);
  EXPECT_LT(std::abs(coarse.Auc() - Auc(scores, labels)), 0.05);
}

TEST(ScoreHistogramTest, MergeEqualsOneHistogramOfEverything) {
  std::vector<float> scores = {0.1f, 0.9f, 0.4f, 0.35f, 0.8f, 0.2f};
  std::vector<float> labels = {0, 1, 1, 0, 1, 0};
  ScoreHistogram all(1024), a(1024), b(1024);
  for (size_t i = 0; i < scores.size(); ++i) {
    all.Add(scores[i], labels[i]);
    (i % 2 ? a : b).Add(scores[i], labels[i]);
  }
  a.Merge(b);
  EXPECT_EQ(a.positives(), all.positives());
  EXPECT_EQ(a.negatives(), all.negatives());
  EXPECT_DOUBLE_EQ(a.LogLoss(), all.LogLoss());
  EXPECT_DOUBLE_EQ(a.Auc(), Auc(scores, labels));  // no two scores share a bin
}

TEST(ScoreHistogramTest, OneClassIsNanAndTiesAreHalf) {
  ScoreHistogram h(8);
  h.Add(0.5f, 1);
  EXPECT_TRUE(std::isnan(h.Auc()));
  h.Add(0.5f, 0);
  EXPECT_DOUBLE_EQ(h.Auc(), 0.5);
  h.Add(1e-9f, 0);  // clipped into the lowest bin, still counted
  EXPECT_EQ(h.examples(), 3);
  EXPECT_DOUBLE_EQ(h.Auc(), 0.75);
}

}  // namespace
}  // namespace mtps
