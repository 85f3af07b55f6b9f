// Evaluation metrics (see metrics.h).
#include "worker/metrics.h"

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

}  // namespace mtps
