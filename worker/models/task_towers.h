// TaskTowers: the per-task heads shared by the one-task-per-data-label models
// (MMOE, PLE, Shared-Bottom; worker/models/mmoe.h, ple.h, shared_bottom.h).
//
// Task k is data label k and is named after it. Its tower (tower_hidden
// hidden layers with the model's HiddenOptions, then a linear layer to one
// logit) reads the task's input (B x in_dim, which the model computes:
// a bottom's output, a gate's mixture of experts); score = sigmoid(logit);
// its loss term is the mean BCE against label column k over the batch, and it
// is evaluated on every row. Output-bias prior: each task's rate over all
// rows.
//
// Parameter layout: towers 0..K-1 (each as Mlp in worker/nn/layers.h, so with
// batch_norm each hidden layer's gamma and beta follow its W and b), from the
// offset the model gives (after its own layers). Running state (batch_norm
// only): towers 0..K-1's, in that order.
#ifndef MTPS_WORKER_MODELS_TASK_TOWERS_H_
#define MTPS_WORKER_MODELS_TASK_TOWERS_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "worker/models/model.h"
#include "worker/nn/layers.h"

namespace mtps {

// Checks what TaskTowers needs of a model's config: `model`.tower_hidden
// widths (CheckLayerWidths) and the task names (CheckTaskNames, named
// `model`, e.g. "model.mmoe"). Returns the tower widths.
StatusOr<std::vector<int>> CheckTaskTowers(
    const google::protobuf::RepeatedField<int32_t>& tower_hidden,
    const std::vector<std::string>& label_names, const std::string& model);

// Owns the towers and their workspaces; not thread-safe (as Model).
template <typename T>
class TaskTowers {
 public:
  using Matrix = RowMatrix<T>;

  // No tasks (a placeholder to assign to).
  TaskTowers() = default;
  // One tower per entry of task_names, reading in_dim columns, parameters
  // from `offset` on.
  TaskTowers(const std::vector<std::string>& task_names, int in_dim,
             const std::vector<int>& tower_hidden, const HiddenOptions& hidden, int64_t offset);

  const std::vector<std::string>& names() const { return names_; }
  int num_tasks() const { return static_cast<int>(names_.size()); }
  // Parameters of all the towers.
  int64_t num_params() const { return num_params_; }

  void InitParams(std::mt19937_64* rng, T* params) const;
  // Appends the towers' blocks, tower k named "tower<k>" (Mlp::AppendBlocks).
  void AppendBlocks(std::vector<ParamBlock>* blocks) const;
  // Sets each tower's output bias to the log-odds of its label's rate
  // (SetBiasToPrior over all rows). labels: N x num_tasks().
  void InitOutputBiases(const Matrix& labels, T* params) const;

  // Task k in training: runs its tower on `in` (dropout from dropout_rng),
  // overwrites the tower's block of param_grad, writes (kOverwrite) or adds
  // (kAccumulate) d loss_k / d in into *in_grad, and returns loss_k.
  T ForwardBackward(int k, const T* params, const Matrix& in, const Matrix& labels,
                    std::mt19937_64* dropout_rng, T* param_grad, Matrix* in_grad,
                    GradMode mode = GradMode::kOverwrite);

  // Task k's predictions of its latest ForwardBackward (every row's score
  // and label k), appended to *column.
  void TrainingScores(int k, const Matrix& labels, EvalColumn* column) const;

  // Task k in evaluation: appends every row's score and label k to *column.
  void Evaluate(int k, const T* params, const Matrix& in, const Matrix& labels, EvalColumn* column);
  // Task k without labels: writes every row's score into column k of
  // *scores (B x num_tasks(), sized by the caller).
  void Predict(int k, const T* params, const Matrix& in, Matrix* scores);

  // The towers' running state (Mlp::AppendState / ReadState, tower by tower).
  void AppendState(std::vector<T>* state) const;
  Status ReadState(StateReader<T>* reader);

 private:
  std::vector<std::string> names_;
  std::vector<Mlp<T>> towers_;
  int64_t num_params_ = 0;
  Matrix logit_grad_;               // B x 1, workspace
  std::vector<Matrix> last_logit_;  // per task: its latest training logits, B x 1
};

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_TASK_TOWERS_H_
