// MMOE (see mmoe.h); instantiated for float and double.

#include "worker/models/mmoe.h"
#include "worker/nn/eigen.h"

#include <random>

#include "worker/models/model_registry.h"
#include "worker/models/task_towers.h"
#include "worker/nn/layers.h"

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
      : input_dim_(input_dim), bias_prior_(bias_prior), dropout_rng_(seed) {
    const int num_tasks = static_cast<int>(task_names.size());
    int64_t at = 0;
    experts_.reserve(num_experts);
    for (int e = 0; e < num_experts; ++e) {
      experts_.emplace_back(input_dim, expert_hidden, Mlp<T>::Output::kHidden, at, hidden);
      at += experts_.back().num_params();
    }
    gates_.reserve(num_tasks);
    for (int k = 0; k < num_tasks; ++k) {
      gates_.emplace_back(input_dim, num_experts, at, Linear<T>::Init::kXavier, hidden.matmul);
      at += gates_.back().num_params();
    }
    towers_ = TaskTowers<T>(task_names, experts_.front().out_dim(), tower_hidden, hidden, at);
    num_params_ = at + towers_.num_params();
    expert_out_.resize(num_experts);
    expert_grad_.resize(num_experts);
    gate_logits_.resize(num_tasks);
    gate_.resize(num_tasks);
    task_in_.resize(num_tasks);
  }

  int64_t num_params() const override { return num_params_; }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return towers_.names(); }
  const std::vector<std::string>& eval_task_names() const override { return towers_.names(); }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    for (const Mlp<T>& expert : experts_) expert.InitParams(&rng, params);
    for (const Linear<T>& gate : gates_) gate.InitParams(&rng, params);
    towers_.InitParams(&rng, params);
  }

  std::vector<ParamBlock> ParamBlocks() const override {
    std::vector<ParamBlock> blocks;
    for (size_t e = 0; e < experts_.size(); ++e) {
      experts_[e].AppendBlocks("expert" + std::to_string(e), &blocks);
    }
    for (size_t k = 0; k < gates_.size(); ++k) {
      gates_[k].AppendBlocks("gate" + std::to_string(k), &blocks);
    }
    towers_.AppendBlocks(&blocks);
    return blocks;
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (bias_prior_) towers_.InitOutputBiases(labels, params);
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  std::vector<T> State() const override {
    std::vector<T> state;
    for (const Mlp<T>& expert : experts_) expert.AppendState(&state);
    towers_.AppendState(&state);
    return state;
  }

  Status SetState(const std::vector<T>& state) override {
    StateReader<T> reader(state);
    for (Mlp<T>& expert : experts_) MTPS_RETURN_IF_ERROR(expert.ReadState(&reader));
    MTPS_RETURN_IF_ERROR(towers_.ReadState(&reader));
    return reader.Finish();
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CHECK_EQ(labels.cols(), towers_.num_tasks());
    Forward(params, input, &dropout_rng_);
    const Eigen::Index n = input.rows();
    const int num_experts = static_cast<int>(experts_.size());
    for (int e = 0; e < num_experts; ++e) {
      expert_grad_[e].setZero(n, expert_out_[e]->cols());
    }
    losses->resize(towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) {
      (*losses)[k] = towers_.ForwardBackward(k, params, task_in_[k], labels, &dropout_rng_,
                                             param_grad, &task_grad_);
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

  void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const override {
    if (out->size() < static_cast<size_t>(towers_.num_tasks())) out->resize(towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) towers_.TrainingScores(k, labels, &(*out)[k]);
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CHECK_EQ(labels.cols(), towers_.num_tasks());
    StartEvalColumns(towers_.names(), out);
    Forward(params, input, nullptr);
    for (int k = 0; k < towers_.num_tasks(); ++k) {
      towers_.Evaluate(k, params, task_in_[k], labels, &(*out)[k]);
    }
  }

  void Predict(const T* params, const Matrix& input, Matrix* scores) override {
    Forward(params, input, nullptr);
    scores->resize(input.rows(), towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) towers_.Predict(k, params, task_in_[k], scores);
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
  const bool bias_prior_;
  std::mt19937_64 dropout_rng_;
  int64_t num_params_ = 0;
  std::vector<Mlp<T>> experts_;
  std::vector<Linear<T>> gates_;
  TaskTowers<T> towers_;
  // Workspaces, reused between batches.
  std::vector<const Matrix*> expert_out_;  // into experts_[e]'s output, B x h
  std::vector<Matrix> expert_grad_;        // d loss / d expert output, B x h
  std::vector<Matrix> gate_logits_;        // B x E per task
  std::vector<Matrix> gate_;               // softmax of gate_logits_, B x E per task
  std::vector<Matrix> task_in_;            // tower inputs, B x h per task
  Matrix task_grad_;                       // B x h
  Matrix gate_grad_;                       // B x E
  Matrix gate_logit_grad_;                 // B x E
};

}  // namespace

void CheckMmoeConfig(const config::ModelConfig& model_config,
                     const std::vector<std::string>& label_names, ConfigProblems* problems) {
  const config::MmoeConfig& config = model_config.mmoe();
  problems->Positive("model.mmoe.num_experts", config.num_experts());
  if (config.num_experts() > kMaxExperts) {
    problems->Add("model.mmoe.num_experts", "must be <= " + std::to_string(kMaxExperts) + " (got " +
                                                std::to_string(config.num_experts()) + ")");
  }
  problems->AddError(
      LayerWidths(config.expert_hidden(), "model.mmoe.expert_hidden", "the expert output width")
          .status());
  problems->AddError(CheckTaskTowers(config.tower_hidden(), label_names, "model.mmoe").status());
}

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateMmoe(const config::ModelConfig& model_config,
                                               const ModelInputs& inputs,
                                               const std::vector<std::string>& label_names,
                                               uint64_t seed) {
  MTPS_RETURN_IF_ERROR(CheckModelKind(model_config, label_names, CheckMmoeConfig));
  const config::MmoeConfig& config = model_config.mmoe();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden,
                        HiddenOptionsFromConfig(model_config, inputs.compute_threads));
  const std::vector<int> expert_hidden(config.expert_hidden().begin(),
                                       config.expert_hidden().end());
  const std::vector<int> tower_hidden(config.tower_hidden().begin(), config.tower_hidden().end());
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
