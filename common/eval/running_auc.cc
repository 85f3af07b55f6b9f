// The windowed, binned training AUC (see common/eval/running_auc.h).
#include "common/eval/running_auc.h"

#include <glog/logging.h>

#include <cmath>
#include <limits>

#include "common/eval/metrics.h"

namespace mtps {

RunningAuc::RunningAuc(int window, int num_bins)
    : ring_(static_cast<size_t>(window)),
      num_bins_(num_bins),
      positives_(static_cast<size_t>(num_bins), 0),
      negatives_(static_cast<size_t>(num_bins), 0) {
  CHECK_GT(window, 0);
  CHECK_GT(num_bins, 0);
}

void RunningAuc::Add(float score, float label) {
  if (std::isnan(score)) return;
  if (filled_ == ring_.size()) {
    const uint32_t old = ring_[next_];
    ((old & 1) != 0 ? positives_ : negatives_)[old >> 1] -= 1;
  } else {
    ++filled_;
  }
  const bool positive = label > 0.5f;
  const uint32_t bin = static_cast<uint32_t>(ScoreBin(score, num_bins_));
  ring_[next_] = bin * 2 + (positive ? 1 : 0);
  (positive ? positives_ : negatives_)[bin] += 1;
  if (++next_ == ring_.size()) next_ = 0;
}

double RunningAuc::Auc() const {
  // Over bins in increasing score: each positive beats the negatives below
  // its bin and ties (one half) those in it.
  double wins = 0, negatives_below = 0, positives = 0;
  for (int b = 0; b < num_bins_; ++b) {
    const double pos = static_cast<double>(positives_[b]);
    const double neg = static_cast<double>(negatives_[b]);
    wins += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    positives += pos;
  }
  if (positives == 0 || negatives_below == 0) return std::numeric_limits<double>::quiet_NaN();
  return wins / (positives * negatives_below);
}

}  // namespace mtps
