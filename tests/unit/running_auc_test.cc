// RunningAuc (common/eval/running_auc.h): over a window it agrees with the
// exact AUC of the window's predictions (binned: within 1e-3), forgets the
// oldest predictions as new ones come, is NaN while a class is missing, and
// ignores NaN scores.
#include "common/eval/running_auc.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "common/eval/metrics.h"

namespace mtps {
namespace {

TEST(RunningAucTest, AgreesWithTheExactAucOfTheWindow) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 1);
  RunningAuc running(5000);
  std::vector<float> scores, labels;
  for (int i = 0; i < 12000; ++i) {
    const float label = (rng() % 4 == 0) ? 1.0f : 0.0f;
    const double logit = (label > 0.5f ? 1.2 : -0.3) + noise(rng);
    const float score = static_cast<float>(1 / (1 + std::exp(-logit)));
    running.Add(score, label);
    scores.push_back(score);
    labels.push_back(label);
  }
  EXPECT_EQ(running.size(), 5000);
  // The exact AUC of the last 5000 only.
  const std::vector<float> s(scores.end() - 5000, scores.end()),
      l(labels.end() - 5000, labels.end());
  const double exact = Auc(s, l);
  EXPECT_NEAR(running.Auc(), exact, 1e-3);
  // And not that of everything seen (the first 7000 differ on purpose).
  EXPECT_GT(exact, 0.7);
}

TEST(RunningAucTest, OldPredictionsLeaveTheWindow) {
  RunningAuc running(4, 64);
  // Perfectly ranked, then perfectly inverted: the window holds only the latter.
  running.Add(0.9f, 1);
  running.Add(0.1f, 0);
  EXPECT_DOUBLE_EQ(running.Auc(), 1.0);
  for (int i = 0; i < 2; ++i) {
    running.Add(0.1f, 1);
    running.Add(0.9f, 0);
  }
  EXPECT_EQ(running.size(), 4);
  EXPECT_DOUBLE_EQ(running.Auc(), 0.0);
  // Ties (one bin) count one half.
  RunningAuc ties(10, 8);
  ties.Add(0.5f, 1);
  ties.Add(0.5f, 0);
  EXPECT_DOUBLE_EQ(ties.Auc(), 0.5);
}

TEST(RunningAucTest, NaNWhileAClassIsMissingAndNaNScoresIgnored) {
  RunningAuc running(100);
  EXPECT_TRUE(std::isnan(running.Auc()));
  running.Add(0.3f, 1);
  running.Add(0.7f, 1);
  EXPECT_TRUE(std::isnan(running.Auc()));
  running.Add(std::nanf(""), 0);
  EXPECT_EQ(running.size(), 2);
  EXPECT_TRUE(std::isnan(running.Auc()));
  running.Add(0.5f, 0);
  EXPECT_DOUBLE_EQ(running.Auc(), 0.5);
}

TEST(ScoreBinTest, BinsAreMonotoneAndClipped) {
  int last = -1;
  for (float p = 0.0f; p <= 1.0f; p += 0.001f) {
    const int b = ScoreBin(p, 1024);
    EXPECT_GE(b, last);
    EXPECT_GE(b, 0);
    EXPECT_LT(b, 1024);
    last = b;
  }
  EXPECT_EQ(ScoreBin(std::nanf(""), 16), 0);
  EXPECT_EQ(ScoreBin(1.0f, 16), 15);
}

}  // namespace
}  // namespace mtps
