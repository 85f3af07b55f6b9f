// RunningAuc: the AUC of one task over the latest `window` training
// predictions, for watching a model learn while it trains (the workers'
// mtps_train_auc metric and progress reports).
//
// Each prediction is kept as its score's bin (ScoreBin, uniform in logit)
// and label in a ring of `window` entries, with counts of positives and
// negatives per bin: Add is O(1) (the oldest prediction leaves as a new one
// comes), Auc is O(bins), memory is window + 2 * bins integers whatever the
// length of training. Pairs within one bin count as ties (one half), so with
// the default 1024 bins the AUC is within about 1e-3 of the exact one over
// the same window (running_auc_test). Not thread-safe.
#ifndef MTPS_COMMON_EVAL_RUNNING_AUC_H_
#define MTPS_COMMON_EVAL_RUNNING_AUC_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mtps {

class RunningAuc {
 public:
  static constexpr int kDefaultWindow = 10000;
  static constexpr int kDefaultBins = 1024;

  // window >= 1 and num_bins >= 1 (CHECKed: programmer errors).
  explicit RunningAuc(int window = kDefaultWindow, int num_bins = kDefaultBins);

  // A training prediction and its label (> 0.5: positive). A NaN score is
  // ignored.
  void Add(float score, float label);

  // Predictions in the window now (at most `window`).
  int64_t size() const { return static_cast<int64_t>(filled_); }
  // The AUC over the window; NaN while one class is absent from it.
  double Auc() const;

 private:
  std::vector<uint32_t> ring_;  // bin * 2 + (positive ? 1 : 0), oldest at next_ once full
  size_t next_ = 0;
  size_t filled_ = 0;
  int num_bins_;
  std::vector<int64_t> positives_, negatives_;  // per bin
};

}  // namespace mtps

#endif  // MTPS_COMMON_EVAL_RUNNING_AUC_H_
