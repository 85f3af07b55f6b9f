// Evaluation metrics over the scores and 0/1 labels of one task (EvalColumn).
// Used by the workers and the scheduler. Pure functions, thread-safe.
// scores and labels must have the same length (a programmer error otherwise);
// a label > 0.5 counts as positive.
#ifndef MTPS_WORKER_METRICS_H_
#define MTPS_WORKER_METRICS_H_

#include <vector>

namespace mtps {

// Exact ROC AUC (Mann-Whitney U, ties count one half), O(n log n). NaN when a class is absent
// or a score is NaN.
double Auc(const std::vector<float>& scores, const std::vector<float>& labels);

// Mean binary log loss, scores clipped to [1e-7, 1 - 1e-7]. NaN for no examples.
double LogLoss(const std::vector<float>& scores, const std::vector<float>& labels);

}  // namespace mtps

#endif  // MTPS_WORKER_METRICS_H_
