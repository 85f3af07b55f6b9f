// Evaluation metrics (see metrics.h).
#include "common/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <glog/logging.h>

namespace mtps {

double Auc(const std::vector<float>& scores, const std::vector<float>& labels) {
  CHECK_EQ(scores.size(), labels.size());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::pair<float, bool>> examples(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) return nan;
    examples[i] = {scores[i], labels[i] > 0.5f};
  }
  std::sort(examples.begin(), examples.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  // U = number of (positive, negative) pairs ranked correctly, ties 1/2.
  double u = 0;
  double negatives_below = 0;
  double positives = 0;
  for (size_t begin = 0; begin < examples.size();) {
    size_t end = begin;
    double group_pos = 0;
    double group_neg = 0;
    while (end < examples.size() && examples[end].first == examples[begin].first) {
      (examples[end].second ? group_pos : group_neg) += 1;
      ++end;
    }
    u += group_pos * (negatives_below + 0.5 * group_neg);
    negatives_below += group_neg;
    positives += group_pos;
    begin = end;
  }
  const double negatives = negatives_below;
  if (positives == 0 || negatives == 0) return nan;
  return u / (positives * negatives);
}

double LogLoss(const std::vector<float>& scores, const std::vector<float>& labels) {
  CHECK_EQ(scores.size(), labels.size());
  if (scores.empty()) return std::numeric_limits<double>::quiet_NaN();
  constexpr double kEps = 1e-7;
  double sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const double p = std::clamp(static_cast<double>(scores[i]), kEps, 1.0 - kEps);
    const double y = labels[i];
    sum -= y * std::log(p) + (1.0 - y) * std::log(1.0 - p);
  }
  return sum / static_cast<double>(scores.size());
}

ScoreHistogram::ScoreHistogram(int num_bins)
    : positives_(static_cast<size_t>(num_bins), 0), negatives_(static_cast<size_t>(num_bins), 0) {
  CHECK_GT(num_bins, 0);
}

int ScoreBin(float score, int num_bins) {
  constexpr double kEps = 1e-7;
  constexpr double kLogitRange = 16.0;
  const double p = std::clamp(static_cast<double>(score), kEps, 1.0 - kEps);
  const double logit = std::log(p) - std::log1p(-p);
  const double unit = (logit + kLogitRange) / (2 * kLogitRange);
  if (!(unit > 0)) return 0;  // NaN too
  return std::min(static_cast<int>(unit * num_bins), num_bins - 1);
}

void ScoreHistogram::Add(float score, float label) {
  constexpr double kEps = 1e-7;
  const double p = std::clamp(static_cast<double>(score), kEps, 1.0 - kEps);
  const int bin = ScoreBin(score, num_bins());
  const bool positive = label > 0.5f;
  (positive ? positives_ : negatives_)[static_cast<size_t>(bin)] += 1;
  logloss_sum_ -= positive ? std::log(p) : std::log1p(-p);
}

void ScoreHistogram::Merge(const ScoreHistogram& other) {
  CHECK_EQ(num_bins(), other.num_bins());
  for (size_t i = 0; i < positives_.size(); ++i) {
    positives_[i] += other.positives_[i];
    negatives_[i] += other.negatives_[i];
  }
  logloss_sum_ += other.logloss_sum_;
}

int64_t ScoreHistogram::examples() const {
  uint64_t n = 0;
  for (size_t i = 0; i < positives_.size(); ++i) n += positives_[i] + negatives_[i];
  return static_cast<int64_t>(n);
}

double ScoreHistogram::Auc() const {
  // Walk bins from low to high score: every positive in a bin beats every
  // negative in lower bins and ties with the negatives of its own bin.
  double negatives_below = 0, wins = 0, total_pos = 0, total_neg = 0;
  for (size_t i = 0; i < positives_.size(); ++i) {
    const double pos = static_cast<double>(positives_[i]);
    const double neg = static_cast<double>(negatives_[i]);
    wins += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    total_pos += pos;
    total_neg += neg;
  }
  if (total_pos == 0 || total_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return wins / (total_pos * total_neg);
}

double ScoreHistogram::LogLoss() const {
  const int64_t n = examples();
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  return logloss_sum_ / static_cast<double>(n);
}

}  // namespace mtps
