// MMOE (see mmoe.h); instantiated for float and double.

#include "worker/mmoe.h"
#include "worker/eigen.h"

#include <random>

#include "worker/layers.h"

namespace mtps {
namespace {

constexpr int kMaxExperts = 1024;

// Owns its experts, gates and towers and their workspaces; not thread-safe
// (see Model).
template <typename T>
class Mmoe final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  Mmoe(int input_dim, int num_experts, const std::vector<int>& expert_hidden,
       const std::vector<int>& tower_hidden, const HiddenOptions& hidden,
       const std::vector<std::string>& task_names, bool bias_prior, uint64_t seed)
      : input_dim_(input_dim),
        task_names_(task_names),
        bias_prior_(bias_prior),
        dropout_rng_(seed) {
    const int num_tasks = static_cast<int>(task_names.size());
    int64_t at = 0;
    experts_.reserve(num_experts);
    for (int e = 0; e < num_experts; ++e) {
      experts_.emplace_back(input_dim, expert_hidden, Mlp<T>::Output::kHidden, at, hidden);
      at += experts_.back().num_params();
    }
    const int expert_dim = experts_.front().out_dim();
    gates_.reserve(num_tasks);
    for (int k = 0; k < num_tasks; ++k) {
      gates_.emplace_back(input_dim, num_experts, at, Linear<T>::Init::kXavier);
      at += gates_.back().num_params();
    }
    std::vector<int> tower_widths = tower_hidden;
    tower_widths.push_back(1);
    towers_.reserve(num_tasks);
    for (int k = 0; k < num_tasks; ++k) {
      towers_.emplace_back(expert_dim, tower_widths, Mlp<T>::Output::kLinear, at, hidden);
      at += towers_.back().num_params();
    }
    num_params_ = at;
    expert_out_.resize(num_experts);
    expert_grad_.resize(num_experts);
    gate_logits_.resize(num_tasks);
    gate_.resize(num_tasks);
    task_in_.resize(num_tasks);
  }

  int64_t num_params() const override { return num_params_; }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return task_names_; }
  const std::vector<std::string>& eval_task_names() const override { return task_names_; }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    for (const Mlp<T>& expert : experts_) expert.InitParams(&rng, params);
    for (const Linear<T>& gate : gates_) gate.InitParams(&rng, params);
    for (const Mlp<T>& tower : towers_) tower.InitParams(&rng, params);
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (!bias_prior_) return;
    CHECK_EQ(labels.cols(), static_cast<Eigen::Index>(task_names_.size()));
    for (size_t k = 0; k < towers_.size(); ++k) {
      SetBiasToPrior(labels, static_cast<int>(k), -1, towers_[k].output_bias_offset(), params);
    }
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CHECK_EQ(labels.cols(), static_cast<Eigen::Index>(task_names_.size()));
    Forward(params, input, &dropout_rng_);
    const Eigen::Index n = input.rows();
    const int num_experts = static_cast<int>(experts_.size());
    for (int e = 0; e < num_experts; ++e) {
      expert_grad_[e].setZero(n, expert_out_[e]->cols());
    }
    losses->resize(task_names_.size());
    for (size_t k = 0; k < task_names_.size(); ++k) {
      const Matrix& logit = towers_[k].Forward(params, task_in_[k], &dropout_rng_);
      (*losses)[k] = BceWithLogits<T>::Forward(logit.col(0), labels.col(k));
      BceWithLogits<T>::Backward(logit.col(0), labels.col(k), &logit_grad_);
      towers_[k].Backward(params, logit_grad_, param_grad, &task_grad_, GradMode::kOverwrite);
      // task_in = sum_e gate[:, e] * expert_out[e], row-wise.
      gate_grad_.resize(n, num_experts);
      for (int e = 0; e < num_experts; ++e) {
        const Matrix& out = *expert_out_[e];
        gate_grad_.col(e) = task_grad_.cwiseProduct(out).rowwise().sum();
        expert_grad_[e].array() += task_grad_.array().colwise() * gate_[k].col(e).array();
      }
      Softmax<T>::Backward(gate_[k], gate_grad_, &gate_logit_grad_);
      gates_[k].Backward(params, input, gate_logit_grad_, param_grad, input_grad,
                         k == 0 ? GradMode::kOverwrite : GradMode::kAccumulate);
    }
    for (int e = 0; e < num_experts; ++e) {
      experts_[e].Backward(params, expert_grad_[e], param_grad, input_grad, GradMode::kAccumulate);
    }
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CHECK_EQ(labels.cols(), static_cast<Eigen::Index>(task_names_.size()));
    if (out->empty()) {
      out->resize(task_names_.size());
      for (size_t k = 0; k < task_names_.size(); ++k) (*out)[k].task = task_names_[k];
    }
    CHECK_EQ(out->size(), task_names_.size());
    Forward(params, input, nullptr);
    for (size_t k = 0; k < task_names_.size(); ++k) {
      const Matrix& logit = towers_[k].Forward(params, task_in_[k], nullptr);
      EvalColumn& column = (*out)[k];
      for (Eigen::Index i = 0; i < input.rows(); ++i) {
        column.scores.push_back(static_cast<float>(StableSigmoid(logit(i, 0))));
        column.labels.push_back(static_cast<float>(labels(i, k)));
      }
    }
  }

 private:
  // Experts, gates and the task inputs (the towers run per task afterwards).
  // dropout_rng: null in evaluation.
  void Forward(const T* params, const Matrix& input, std::mt19937_64* dropout_rng) {
    CHECK_EQ(input.cols(), input_dim_);
    for (size_t e = 0; e < experts_.size(); ++e) {
      expert_out_[e] = &experts_[e].Forward(params, input, dropout_rng);
    }
    for (size_t k = 0; k < gates_.size(); ++k) {
      gates_[k].Forward(params, input, &gate_logits_[k]);
      Softmax<T>::Forward(gate_logits_[k], &gate_[k]);
      Matrix& mixed = task_in_[k];
      mixed.setZero(input.rows(), expert_out_[0]->cols());
      for (size_t e = 0; e < experts_.size(); ++e) {
        mixed.array() += expert_out_[e]->array().colwise() * gate_[k].col(e).array();
      }
    }
  }

  const int input_dim_;
  const std::vector<std::string> task_names_;
  const bool bias_prior_;
  std::mt19937_64 dropout_rng_;
  int64_t num_params_ = 0;
  std::vector<Mlp<T>> experts_;
  std::vector<Linear<T>> gates_;
  std::vector<Mlp<T>> towers_;
  // Workspaces, reused between batches.
  std::vector<const Matrix*> expert_out_;  // into experts_[e]'s output, B x h
  std::vector<Matrix> expert_grad_;        // d loss / d expert output, B x h
  std::vector<Matrix> gate_logits_;        // B x E per task
  std::vector<Matrix> gate_;               // softmax of gate_logits_, B x E per task
  std::vector<Matrix> task_in_;            // tower inputs, B x h per task
  Matrix logit_grad_;                      // B x 1
  Matrix task_grad_;                       // B x h
  Matrix gate_grad_;                       // B x E
  Matrix gate_logit_grad_;                 // B x E
};

}  // namespace

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateMmoe(const config::ModelConfig& model_config,
                                               const ModelInputs& inputs,
                                               const std::vector<std::string>& label_names,
                                               uint64_t seed) {
  const config::MmoeConfig& config = model_config.mmoe();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden, HiddenOptionsFromConfig(model_config));
  if (config.num_experts() <= 0) {
    return Status::InvalidArgument("model.mmoe.num_experts must be > 0, got " +
                                   std::to_string(config.num_experts()));
  }
  if (config.num_experts() > kMaxExperts) {
    return Status::InvalidArgument(
        "model.mmoe.num_experts must be <= " + std::to_string(kMaxExperts) + ", got " +
        std::to_string(config.num_experts()));
  }
  if (config.expert_hidden_size() == 0) {
    return Status::InvalidArgument(
        "model.mmoe.expert_hidden must list at least one width (the expert output width)");
  }
  const std::vector<int> expert_hidden(config.expert_hidden().begin(),
                                       config.expert_hidden().end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(expert_hidden, "model.mmoe.expert_hidden"));
  const std::vector<int> tower_hidden(config.tower_hidden().begin(), config.tower_hidden().end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(tower_hidden, "model.mmoe.tower_hidden"));
  MTPS_RETURN_IF_ERROR(CheckTaskNames(label_names, "model.mmoe"));
  return std::unique_ptr<Model<T>>(std::make_unique<Mmoe<T>>(
      inputs.sparse_width + inputs.dense_width, config.num_experts(), expert_hidden, tower_hidden,
      hidden, label_names, model_config.output_bias_from_prior(), seed));
}

template StatusOr<std::unique_ptr<Model<float>>> CreateMmoe<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateMmoe<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
