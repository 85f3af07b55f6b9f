// TaskTowers (see task_towers.h); instantiated for float and double.
#include "worker/nn/eigen.h"

#include "worker/models/task_towers.h"

#include "worker/models/model_registry.h"

#include <glog/logging.h>

namespace mtps {

StatusOr<std::vector<int>> CheckTaskTowers(
    const google::protobuf::RepeatedField<int32_t>& tower_hidden,
    const std::vector<std::string>& label_names, const std::string& model) {
  MTPS_ASSIGN_OR_RETURN(std::vector<int> widths,
                        LayerWidths(tower_hidden, model + ".tower_hidden"));
  MTPS_RETURN_IF_ERROR(CheckTaskNames(label_names, model));
  return widths;
}

std::vector<std::string> TaskPerLabelNames(const config::ModelConfig&,
                                           const std::vector<std::string>& label_names) {
  return label_names;  // TaskTowers: task k is data label k, named after it
}

template <typename T>
TaskTowers<T>::TaskTowers(const std::vector<std::string>& task_names, int in_dim,
                          const std::vector<int>& tower_hidden, const HiddenOptions& hidden,
                          int64_t offset)
    : names_(task_names) {
  const std::vector<int> widths = WithLogit(tower_hidden);
  int64_t at = offset;
  towers_.reserve(names_.size());
  for (size_t k = 0; k < names_.size(); ++k) {
    towers_.emplace_back(in_dim, widths, Mlp<T>::Output::kLinear, at, hidden);
    at += towers_.back().num_params();
  }
  num_params_ = at - offset;
}

template <typename T>
void TaskTowers<T>::InitParams(std::mt19937_64* rng, T* params) const {
  for (const Mlp<T>& tower : towers_) tower.InitParams(rng, params);
}

template <typename T>
void TaskTowers<T>::AppendBlocks(std::vector<ParamBlock>* blocks) const {
  for (size_t k = 0; k < towers_.size(); ++k) {
    towers_[k].AppendBlocks("tower" + std::to_string(k), blocks);
  }
}

template <typename T>
void TaskTowers<T>::InitOutputBiases(const Matrix& labels, T* params) const {
  CHECK_EQ(labels.cols(), num_tasks());
  for (int k = 0; k < num_tasks(); ++k) {
    SetBiasToPrior(labels, k, -1, towers_[k].output_bias_offset(), params);
  }
}

template <typename T>
T TaskTowers<T>::ForwardBackward(int k, const T* params, const Matrix& in, const Matrix& labels,
                                 std::mt19937_64* dropout_rng, T* param_grad, Matrix* in_grad,
                                 GradMode mode) {
  const Matrix& logit = towers_[k].Forward(params, in, dropout_rng);
  if (last_logit_.size() < towers_.size()) last_logit_.resize(towers_.size());
  last_logit_[static_cast<size_t>(k)] = logit.col(0);
  const T loss = BceWithLogits<T>::Forward(logit.col(0), labels.col(k));
  BceWithLogits<T>::Backward(logit.col(0), labels.col(k), &logit_grad_);
  towers_[k].Backward(params, logit_grad_, param_grad, in_grad, mode);
  return loss;
}

template <typename T>
void TaskTowers<T>::TrainingScores(int k, const Matrix& labels, EvalColumn* column) const {
  if (static_cast<size_t>(k) >= last_logit_.size()) return;
  const Matrix& logit = last_logit_[static_cast<size_t>(k)];
  for (Eigen::Index i = 0; i < logit.rows() && i < labels.rows(); ++i) {
    column->scores.push_back(static_cast<float>(StableSigmoid(logit(i, 0))));
    column->labels.push_back(static_cast<float>(labels(i, k)));
  }
}

template <typename T>
void TaskTowers<T>::Evaluate(int k, const T* params, const Matrix& in, const Matrix& labels,
                             EvalColumn* column) {
  const Matrix& logit = towers_[k].Forward(params, in, nullptr);
  for (Eigen::Index i = 0; i < in.rows(); ++i) {
    column->scores.push_back(static_cast<float>(StableSigmoid(logit(i, 0))));
    column->labels.push_back(static_cast<float>(labels(i, k)));
  }
}

template <typename T>
void TaskTowers<T>::Predict(int k, const T* params, const Matrix& in, Matrix* scores) {
  const Matrix& logit = towers_[k].Forward(params, in, nullptr);
  for (Eigen::Index i = 0; i < in.rows(); ++i) (*scores)(i, k) = StableSigmoid(logit(i, 0));
}

template <typename T>
void TaskTowers<T>::AppendState(std::vector<T>* state) const {
  for (const Mlp<T>& tower : towers_) tower.AppendState(state);
}

template <typename T>
Status TaskTowers<T>::ReadState(StateReader<T>* reader) {
  for (Mlp<T>& tower : towers_) MTPS_RETURN_IF_ERROR(tower.ReadState(reader));
  return Status::OK();
}

template class TaskTowers<float>;
template class TaskTowers<double>;

}  // namespace mtps
