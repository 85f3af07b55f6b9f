// Shared-Bottom (see shared_bottom.h); instantiated for float and double.

#include "worker/models/shared_bottom.h"
#include "worker/nn/eigen.h"

#include <random>

#include "worker/models/model_registry.h"
#include "worker/models/task_towers.h"
#include "worker/nn/layers.h"

namespace mtps {
namespace {

// Owns its bottom and towers, their workspaces and its dropout RNG; not
// thread-safe (see Model).
template <typename T>
class SharedBottom final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  SharedBottom(int input_dim, const std::vector<int>& bottom_hidden,
               const std::vector<int>& tower_hidden, const HiddenOptions& hidden,
               const std::vector<std::string>& task_names, bool bias_prior, uint64_t seed)
      : input_dim_(input_dim),
        bias_prior_(bias_prior),
        bottom_(input_dim, bottom_hidden, Mlp<T>::Output::kHidden, 0, hidden),
        towers_(task_names, bottom_.out_dim(), tower_hidden, hidden, bottom_.num_params()),
        dropout_rng_(seed) {}

  int64_t num_params() const override { return bottom_.num_params() + towers_.num_params(); }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return towers_.names(); }
  const std::vector<std::string>& eval_task_names() const override { return towers_.names(); }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    bottom_.InitParams(&rng, params);
    towers_.InitParams(&rng, params);
  }

  std::vector<ParamBlock> ParamBlocks() const override {
    std::vector<ParamBlock> blocks;
    bottom_.AppendBlocks("bottom", &blocks);
    towers_.AppendBlocks(&blocks);
    return blocks;
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (bias_prior_) towers_.InitOutputBiases(labels, params);
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  std::vector<T> State() const override {
    std::vector<T> state;
    bottom_.AppendState(&state);
    towers_.AppendState(&state);
    return state;
  }

  Status SetState(const std::vector<T>& state) override {
    StateReader<T> reader(state);
    MTPS_RETURN_IF_ERROR(bottom_.ReadState(&reader));
    MTPS_RETURN_IF_ERROR(towers_.ReadState(&reader));
    return reader.Finish();
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CheckShapes(input, labels);
    const Matrix& shared = bottom_.Forward(params, input, &dropout_rng_);
    losses->resize(towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) {
      (*losses)[k] = towers_.ForwardBackward(k, params, shared, labels, &dropout_rng_, param_grad,
                                             &shared_grad_,
                                             k == 0 ? GradMode::kOverwrite : GradMode::kAccumulate);
    }
    bottom_.Backward(params, shared_grad_, param_grad, input_grad);
  }

  void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const override {
    if (out->size() < static_cast<size_t>(towers_.num_tasks())) out->resize(towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) towers_.TrainingScores(k, labels, &(*out)[k]);
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CheckShapes(input, labels);
    StartEvalColumns(towers_.names(), out);
    const Matrix& shared = bottom_.Forward(params, input, nullptr);
    for (int k = 0; k < towers_.num_tasks(); ++k) {
      towers_.Evaluate(k, params, shared, labels, &(*out)[k]);
    }
  }

  void Predict(const T* params, const Matrix& input, Matrix* scores) override {
    CHECK_EQ(input.cols(), input_dim_);
    const Matrix& shared = bottom_.Forward(params, input, nullptr);
    scores->resize(input.rows(), towers_.num_tasks());
    for (int k = 0; k < towers_.num_tasks(); ++k) towers_.Predict(k, params, shared, scores);
  }

 private:
  void CheckShapes(const Matrix& input, const Matrix& labels) const {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_EQ(labels.cols(), towers_.num_tasks());
  }

  const int input_dim_;
  const bool bias_prior_;
  Mlp<T> bottom_;
  TaskTowers<T> towers_;
  std::mt19937_64 dropout_rng_;
  // Workspaces, reused between batches.
  Matrix shared_grad_;  // d loss / d bottom output, B x h
};

}  // namespace

void CheckSharedBottomConfig(const config::ModelConfig& config,
                             const std::vector<std::string>& label_names,
                             ConfigProblems* problems) {
  const config::SharedBottomConfig& sb = config.shared_bottom();
  problems->AddError(LayerWidths(sb.bottom_hidden(), "model.shared_bottom.bottom_hidden",
                                 "the bottom's output width")
                         .status());
  problems->AddError(
      CheckTaskTowers(sb.tower_hidden(), label_names, "model.shared_bottom").status());
}

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateSharedBottom(const config::ModelConfig& config,
                                                       const ModelInputs& inputs,
                                                       const std::vector<std::string>& label_names,
                                                       uint64_t seed) {
  MTPS_RETURN_IF_ERROR(CheckModelKind(config, label_names, CheckSharedBottomConfig));
  const config::SharedBottomConfig& sb = config.shared_bottom();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden,
                        HiddenOptionsFromConfig(config, inputs.compute_threads));
  const std::vector<int> bottom_hidden(sb.bottom_hidden().begin(), sb.bottom_hidden().end());
  const std::vector<int> tower_hidden(sb.tower_hidden().begin(), sb.tower_hidden().end());
  return std::unique_ptr<Model<T>>(std::make_unique<SharedBottom<T>>(
      inputs.sparse_width + inputs.dense_width, bottom_hidden, tower_hidden, hidden, label_names,
      config.output_bias_from_prior(), seed));
}

template StatusOr<std::unique_ptr<Model<float>>> CreateSharedBottom<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateSharedBottom<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
