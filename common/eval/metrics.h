// Evaluation metrics over the scores and 0/1 labels of one task (EvalColumn).
// Used by the workers and the scheduler. Pure functions, thread-safe.
// scores and labels must have the same length (a programmer error otherwise);
// a label > 0.5 counts as positive.
#ifndef MTPS_COMMON_EVAL_METRICS_H_
#define MTPS_COMMON_EVAL_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace mtps {

// Scores and labels of one evaluation task, for the examples it is evaluated on.
struct EvalColumn {
  std::string task;
  std::vector<float> scores;
  std::vector<float> labels;
};

// Exact ROC AUC (Mann-Whitney U, ties count one half), O(n log n). NaN when a class is absent
// or a score is NaN.
double Auc(const std::vector<float>& scores, const std::vector<float>& labels);

// Mean binary log loss, scores clipped to [1e-7, 1 - 1e-7]. NaN for no examples.
double LogLoss(const std::vector<float>& scores, const std::vector<float>& labels);

// The bin (0..num_bins-1) of `score` in num_bins bins uniform in the score's
// logit over [-16, 16] (scores clipped to [1e-7, 1 - 1e-7]); a NaN score is
// in bin 0. What ScoreHistogram and RunningAuc (running_auc.h) count in.
int ScoreBin(float score, int num_bins);

// The scores of one task summarised as counts of positives and negatives in
// fixed bins of the score's logit, for held-out sets too large to ship every
// score to one place: memory and wire size depend on the number of bins, not
// on the number of examples. Bins are uniform in logit over [-16, 16] (scores
// of 1e-7 and 1 - 1e-7), so tiny probabilities such as CVRs keep resolution.
// AUC counts pairs within one bin as ties (one half); with 2^20 bins it agrees
// with the exact AUC to about 1e-5 on continuous scores (metrics_test).
// Logloss is summed exactly per example. Not thread-safe.
class ScoreHistogram {
 public:
  explicit ScoreHistogram(int num_bins);

  void Add(float score, float label);
  // Adds another histogram's counts (same number of bins, a programmer error
  // otherwise; callers validate remote input first).
  void Merge(const ScoreHistogram& other);

  int num_bins() const { return static_cast<int>(positives_.size()); }
  int64_t examples() const;
  // NaN when a class is absent.
  double Auc() const;
  // Mean log loss (scores clipped as LogLoss does); NaN for no examples.
  double LogLoss() const;

  // The raw state, for the wire.
  std::vector<uint64_t>& positives() { return positives_; }
  std::vector<uint64_t>& negatives() { return negatives_; }
  double& logloss_sum() { return logloss_sum_; }

 private:
  std::vector<uint64_t> positives_;
  std::vector<uint64_t> negatives_;
  double logloss_sum_ = 0;
};

}  // namespace mtps

#endif  // MTPS_COMMON_EVAL_METRICS_H_
