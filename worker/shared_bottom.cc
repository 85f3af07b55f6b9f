// Shared-Bottom (see shared_bottom.h); instantiated for float and double.

#include "worker/shared_bottom.h"
#include "worker/eigen.h"

#include <random>

#include "worker/layers.h"

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
        task_names_(task_names),
        bias_prior_(bias_prior),
        bottom_(input_dim, bottom_hidden, Mlp<T>::Output::kHidden, 0, hidden),
        dropout_rng_(seed) {
    std::vector<int> tower_widths = tower_hidden;
    tower_widths.push_back(1);
    int64_t at = bottom_.num_params();
    towers_.reserve(task_names.size());
    for (size_t k = 0; k < task_names.size(); ++k) {
      towers_.emplace_back(bottom_.out_dim(), tower_widths, Mlp<T>::Output::kLinear, at, hidden);
      at += towers_.back().num_params();
    }
    num_params_ = at;
  }

  int64_t num_params() const override { return num_params_; }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return task_names_; }
  const std::vector<std::string>& eval_task_names() const override { return task_names_; }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    bottom_.InitParams(&rng, params);
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
    CheckShapes(input, labels);
    const Matrix& shared = bottom_.Forward(params, input, &dropout_rng_);
    losses->resize(task_names_.size());
    for (size_t k = 0; k < towers_.size(); ++k) {
      const Matrix& logit = towers_[k].Forward(params, shared, &dropout_rng_);
      (*losses)[k] = BceWithLogits<T>::Forward(logit.col(0), labels.col(k));
      BceWithLogits<T>::Backward(logit.col(0), labels.col(k), &logit_grad_);
      towers_[k].Backward(params, logit_grad_, param_grad, &shared_grad_,
                          k == 0 ? GradMode::kOverwrite : GradMode::kAccumulate);
    }
    bottom_.Backward(params, shared_grad_, param_grad, input_grad);
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CheckShapes(input, labels);
    if (out->empty()) {
      out->resize(task_names_.size());
      for (size_t k = 0; k < task_names_.size(); ++k) (*out)[k].task = task_names_[k];
    }
    CHECK_EQ(out->size(), task_names_.size());
    const Matrix& shared = bottom_.Forward(params, input, nullptr);
    for (size_t k = 0; k < towers_.size(); ++k) {
      const Matrix& logit = towers_[k].Forward(params, shared, nullptr);
      EvalColumn& column = (*out)[k];
      for (Eigen::Index i = 0; i < input.rows(); ++i) {
        column.scores.push_back(static_cast<float>(StableSigmoid(logit(i, 0))));
        column.labels.push_back(static_cast<float>(labels(i, k)));
      }
    }
  }

 private:
  void CheckShapes(const Matrix& input, const Matrix& labels) const {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_EQ(labels.cols(), static_cast<Eigen::Index>(task_names_.size()));
  }

  const int input_dim_;
  const std::vector<std::string> task_names_;
  const bool bias_prior_;
  int64_t num_params_ = 0;
  Mlp<T> bottom_;
  std::vector<Mlp<T>> towers_;
  std::mt19937_64 dropout_rng_;
  // Workspaces, reused between batches.
  Matrix logit_grad_;   // B x 1
  Matrix shared_grad_;  // d loss / d bottom output, B x h
};

}  // namespace

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateSharedBottom(const config::ModelConfig& config,
                                                       const ModelInputs& inputs,
                                                       const std::vector<std::string>& label_names,
                                                       uint64_t seed) {
  const config::SharedBottomConfig& sb = config.shared_bottom();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden, HiddenOptionsFromConfig(config));
  if (sb.bottom_hidden_size() == 0) {
    return Status::InvalidArgument(
        "model.shared_bottom.bottom_hidden must list at least one width (the bottom's output "
        "width)");
  }
  const std::vector<int> bottom_hidden(sb.bottom_hidden().begin(), sb.bottom_hidden().end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(bottom_hidden, "model.shared_bottom.bottom_hidden"));
  const std::vector<int> tower_hidden(sb.tower_hidden().begin(), sb.tower_hidden().end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(tower_hidden, "model.shared_bottom.tower_hidden"));
  MTPS_RETURN_IF_ERROR(CheckTaskNames(label_names, "model.shared_bottom"));
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
