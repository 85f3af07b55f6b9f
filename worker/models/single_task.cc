// Single-task baseline (see single_task.h); instantiated for float and double.

#include "worker/models/single_task.h"
#include "worker/nn/eigen.h"

#include <algorithm>
#include <random>

#include "worker/models/model_registry.h"
#include "worker/nn/layers.h"

namespace mtps {
namespace {

// Owns its MLP, its workspaces and its dropout RNG; not thread-safe (see
// Model).
template <typename T>
class SingleTask final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  // where_col < 0: no only_where.
  SingleTask(int input_dim, const std::vector<int>& hidden_widths, const HiddenOptions& hidden,
             const std::string& label, int label_col, int where_col, bool bias_prior, uint64_t seed)
      : input_dim_(input_dim),
        label_col_(label_col),
        where_col_(where_col),
        bias_prior_(bias_prior),
        mlp_(input_dim, WithLogit(hidden_widths), Mlp<T>::Output::kLinear, 0, hidden),
        names_{label},
        dropout_rng_(seed) {}

  int64_t num_params() const override { return mlp_.num_params(); }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return names_; }
  const std::vector<std::string>& eval_task_names() const override { return names_; }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    mlp_.InitParams(&rng, params);
  }

  std::vector<ParamBlock> ParamBlocks() const override {
    std::vector<ParamBlock> blocks;
    mlp_.AppendBlocks("mlp", &blocks);
    return blocks;
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (!bias_prior_) return;
    SetBiasToPrior(labels, label_col_, where_col_, mlp_.output_bias_offset(), params);
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  std::vector<T> State() const override {
    std::vector<T> state;
    mlp_.AppendState(&state);
    return state;
  }

  Status SetState(const std::vector<T>& state) override {
    StateReader<T> reader(state);
    MTPS_RETURN_IF_ERROR(mlp_.ReadState(&reader));
    return reader.Finish();
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CheckShapes(input, labels);
    const Matrix& logit = mlp_.Forward(params, input, &dropout_rng_);
    last_logit_ = logit.col(0);
    T loss;
    if (where_col_ < 0) {
      loss = BceWithLogits<T>::Forward(logit.col(0), labels.col(label_col_));
      BceWithLogits<T>::Backward(logit.col(0), labels.col(label_col_), &logit_grad_);
    } else {
      loss = BceWithLogits<T>::MaskedForwardBackward(logit.col(0), labels.col(label_col_),
                                                     labels.col(where_col_), &logit_grad_);
    }
    losses->assign({loss});
    mlp_.Backward(params, logit_grad_, param_grad, input_grad);
  }

  void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const override {
    if (out->empty()) out->resize(1);
    EvalColumn& column = (*out)[0];
    for (Eigen::Index i = 0; i < last_logit_.rows() && i < labels.rows(); ++i) {
      if (where_col_ >= 0 && !(labels(i, where_col_) > T(0.5))) continue;
      column.scores.push_back(static_cast<float>(StableSigmoid(last_logit_(i, 0))));
      column.labels.push_back(static_cast<float>(labels(i, label_col_)));
    }
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CheckShapes(input, labels);
    StartEvalColumns(names_, out);
    const Matrix& logit = mlp_.Forward(params, input, nullptr);
    EvalColumn& column = (*out)[0];
    for (Eigen::Index i = 0; i < input.rows(); ++i) {
      if (where_col_ >= 0 && !(labels(i, where_col_) > T(0.5))) continue;
      column.scores.push_back(static_cast<float>(StableSigmoid(logit(i, 0))));
      column.labels.push_back(static_cast<float>(labels(i, label_col_)));
    }
  }

  void Predict(const T* params, const Matrix& input, Matrix* scores) override {
    CHECK_EQ(input.cols(), input_dim_);
    const Matrix& logit = mlp_.Forward(params, input, nullptr);
    scores->resize(input.rows(), 1);
    for (Eigen::Index i = 0; i < input.rows(); ++i) (*scores)(i, 0) = StableSigmoid(logit(i, 0));
  }

 private:
  void CheckShapes(const Matrix& input, const Matrix& labels) const {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_GT(labels.cols(), std::max(label_col_, where_col_));
  }

  const int input_dim_;
  const int label_col_;
  const int where_col_;
  const bool bias_prior_;
  Mlp<T> mlp_;
  const std::vector<std::string> names_;
  std::mt19937_64 dropout_rng_;
  Matrix logit_grad_;  // B x 1, workspace
  Matrix last_logit_;  // the latest training logits, B x 1
};

}  // namespace

void CheckSingleTaskConfig(const config::ModelConfig& config,
                           const std::vector<std::string>& label_names, ConfigProblems* problems) {
  const config::SingleTaskConfig& st = config.single_task();
  problems->AddError(LayerWidths(st.hidden(), "model.single_task.hidden").status());
  problems->AddError(FindLabel(label_names, st.label(), "model.single_task.label").status());
  if (!st.only_where().empty()) {  // an empty name means unset
    problems->AddError(
        FindLabel(label_names, st.only_where(), "model.single_task.only_where").status());
    if (st.only_where() == st.label()) {
      problems->Add(
          "model.single_task.only_where",
          "\"" + st.only_where() + "\" is model.single_task.label itself; it must differ");
    }
  }
}

std::vector<std::string> SingleTaskTaskNames(const config::ModelConfig& config,
                                             const std::vector<std::string>&) {
  return {config.single_task().label()};
}

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateSingleTask(const config::ModelConfig& config,
                                                     const ModelInputs& inputs,
                                                     const std::vector<std::string>& label_names,
                                                     uint64_t seed) {
  MTPS_RETURN_IF_ERROR(CheckModelKind(config, label_names, CheckSingleTaskConfig));
  const config::SingleTaskConfig& st = config.single_task();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden,
                        HiddenOptionsFromConfig(config, inputs.compute_threads));
  const std::vector<int> widths(st.hidden().begin(), st.hidden().end());
  const int label_col = LabelColumn(label_names, st.label());
  // An empty only_where means unset.
  const int where_col = st.only_where().empty() ? -1 : LabelColumn(label_names, st.only_where());
  return std::unique_ptr<Model<T>>(std::make_unique<SingleTask<T>>(
      inputs.sparse_width + inputs.dense_width, widths, hidden, st.label(), label_col, where_col,
      config.output_bias_from_prior(), seed));
}

template StatusOr<std::unique_ptr<Model<float>>> CreateSingleTask<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateSingleTask<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
