// ESMM and its NO_SHARING / NAIVE variants (see esmm.h); instantiated for
// float and double.

#include "worker/models/esmm.h"
#include "worker/nn/eigen.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "worker/models/model_registry.h"
#include "worker/nn/layers.h"

namespace mtps {
namespace {

using Variant = config::EsmmConfig::Variant;

// The evaluation tasks of every variant (EsmmTaskNames).
const std::vector<std::string>& EsmmTasks() {
  static const std::vector<std::string> kTasks = {"ctr", "cvr", "ctcvr"};
  return kTasks;
}

// log(1 + exp(x)) without overflow.
template <typename T>
T Softplus(T x) {
  return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

// log(exp(u) + exp(v) + exp(w)), max-shifted.
template <typename T>
T LogSumExp3(T u, T v, T w) {
  const T m = std::max(u, std::max(v, w));
  return m + std::log(std::exp(u - m) + std::exp(v - m) + std::exp(w - m));
}

// Owns its two towers, their workspaces and its dropout RNG; not thread-safe
// (see Model).
template <typename T>
class Esmm final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  Esmm(Variant variant, const ModelInputs& inputs, const std::vector<int>& tower_hidden,
       const HiddenOptions& hidden, int click_col, int conversion_col, bool bias_prior,
       uint64_t seed)
      : variant_(variant),
        groups_(variant == config::EsmmConfig::ESMM ? 1 : 2),
        sparse_width_(inputs.sparse_width),
        dense_width_(inputs.dense_width),
        input_dim_(groups_ * inputs.sparse_width + inputs.dense_width),
        click_col_(click_col),
        conversion_col_(conversion_col),
        bias_prior_(bias_prior),
        ctr_(TowerInput(), WithLogit(tower_hidden), Mlp<T>::Output::kLinear, 0, hidden),
        cvr_(TowerInput(), WithLogit(tower_hidden), Mlp<T>::Output::kLinear, ctr_.num_params(),
             hidden),
        loss_names_(variant == config::EsmmConfig::NAIVE
                        ? std::vector<std::string>{"ctr", "cvr"}
                        : std::vector<std::string>{"ctr", "ctcvr"}),
        eval_names_(EsmmTasks()),
        dropout_rng_(seed) {}

  int64_t num_params() const override { return ctr_.num_params() + cvr_.num_params(); }
  int input_dim() const override { return input_dim_; }
  int embedding_groups() const override { return groups_; }
  const std::vector<std::string>& loss_names() const override { return loss_names_; }
  const std::vector<std::string>& eval_task_names() const override { return eval_names_; }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    ctr_.InitParams(&rng, params);
    cvr_.InitParams(&rng, params);
  }

  std::vector<ParamBlock> ParamBlocks() const override {
    std::vector<ParamBlock> blocks;
    ctr_.AppendBlocks("ctr", &blocks);
    cvr_.AppendBlocks("cvr", &blocks);
    return blocks;
  }

  void InitOutputBiases(const Matrix& labels, T* params) const override {
    if (!bias_prior_) return;
    SetBiasToPrior(labels, click_col_, -1, ctr_.output_bias_offset(), params);
    SetBiasToPrior(labels, conversion_col_, click_col_, cvr_.output_bias_offset(), params);
  }

  void SeedDropout(uint64_t seed) override { dropout_rng_.seed(seed); }

  std::vector<T> State() const override {
    std::vector<T> state;
    ctr_.AppendState(&state);
    cvr_.AppendState(&state);
    return state;
  }

  Status SetState(const std::vector<T>& state) override {
    StateReader<T> reader(state);
    MTPS_RETURN_IF_ERROR(ctr_.ReadState(&reader));
    MTPS_RETURN_IF_ERROR(cvr_.ReadState(&reader));
    return reader.Finish();
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CheckShapes(input, labels);
    const Eigen::Index n = input.rows();
    TowerInputs(input);
    const Matrix& a = ctr_.Forward(params, *ctr_in_, &dropout_rng_);
    const Matrix& c = cvr_.Forward(params, *cvr_in_, &dropout_rng_);
    last_ctr_logit_ = a.col(0);
    last_cvr_logit_ = c.col(0);
    if (variant_ == config::EsmmConfig::NAIVE) {
      const T ctr = BceWithLogits<T>::Forward(a.col(0), labels.col(click_col_));
      BceWithLogits<T>::Backward(a.col(0), labels.col(click_col_), &da_);
      const T cvr = BceWithLogits<T>::MaskedForwardBackward(c.col(0), labels.col(conversion_col_),
                                                            labels.col(click_col_), &dc_);
      losses->assign({ctr, cvr});
    } else {
      da_.resize(n, 1);
      dc_.resize(n, 1);
      const T inv_n = n > 0 ? T(1) / static_cast<T>(n) : T(0);
      T ctr_sum = 0;
      T ctcvr_sum = 0;
      for (Eigen::Index i = 0; i < n; ++i) {
        const T ai = a(i, 0);
        const T ci = c(i, 0);
        const T click = labels(i, click_col_);
        const T y = click * labels(i, conversion_col_);
        // ctr: BCE with logits.
        ctr_sum += std::max(ai, T(0)) - ai * click + std::log1p(std::exp(-std::abs(ai)));
        T grad_a = StableSigmoid(ai) - click;
        // ctcvr: see the header for the formulas.
        const T sp_neg_a = Softplus(-ai);
        const T sp_neg_c = Softplus(-ci);
        const T log_p = -sp_neg_a - sp_neg_c;
        const T log_1mp = LogSumExp3(-ai, -ci, -ai - ci) - sp_neg_a - sp_neg_c;
        ctcvr_sum += -(y * log_p + (T(1) - y) * log_1mp);
        const T odds = log_p - log_1mp;
        grad_a += -y * std::exp(-Softplus(ai)) + (T(1) - y) * std::exp(-Softplus(ai) + odds);
        const T grad_c = -y * std::exp(-Softplus(ci)) + (T(1) - y) * std::exp(-Softplus(ci) + odds);
        da_(i, 0) = grad_a * inv_n;
        dc_(i, 0) = grad_c * inv_n;
      }
      losses->assign({ctr_sum * inv_n, ctcvr_sum * inv_n});
    }
    if (groups_ == 1) {
      ctr_.Backward(params, da_, param_grad, input_grad, GradMode::kOverwrite);
      cvr_.Backward(params, dc_, param_grad, input_grad, GradMode::kAccumulate);
      return;
    }
    ctr_.Backward(params, da_, param_grad, input_grad ? &ctr_grad_ : nullptr);
    cvr_.Backward(params, dc_, param_grad, input_grad ? &cvr_grad_ : nullptr);
    if (input_grad == nullptr) return;
    // Tower i's sparse part is group i; both towers read the dense features.
    input_grad->resize(n, input_dim_);
    input_grad->leftCols(sparse_width_) = ctr_grad_.leftCols(sparse_width_);
    input_grad->middleCols(sparse_width_, sparse_width_) = cvr_grad_.leftCols(sparse_width_);
    input_grad->rightCols(dense_width_) =
        ctr_grad_.rightCols(dense_width_) + cvr_grad_.rightCols(dense_width_);
  }

  void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const override {
    if (out->size() < 2) out->resize(2);
    EvalColumn& ctr = (*out)[0];
    EvalColumn& second = (*out)[1];  // cvr (NAIVE, clicked rows) or ctcvr
    const bool naive = variant_ == config::EsmmConfig::NAIVE;
    for (Eigen::Index i = 0; i < last_ctr_logit_.rows() && i < labels.rows(); ++i) {
      const T p_ctr = StableSigmoid(last_ctr_logit_(i, 0));
      const T p_cvr = StableSigmoid(last_cvr_logit_(i, 0));
      const T click = labels(i, click_col_);
      const T conversion = labels(i, conversion_col_);
      ctr.scores.push_back(static_cast<float>(p_ctr));
      ctr.labels.push_back(static_cast<float>(click));
      if (!naive) {
        second.scores.push_back(static_cast<float>(p_ctr * p_cvr));
        second.labels.push_back(static_cast<float>(click * conversion));
      } else if (click > T(0.5)) {
        second.scores.push_back(static_cast<float>(p_cvr));
        second.labels.push_back(static_cast<float>(conversion));
      }
    }
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CheckShapes(input, labels);
    StartEvalColumns(eval_names_, out);
    EvalColumn& ctr = (*out)[0];
    EvalColumn& cvr = (*out)[1];
    EvalColumn& ctcvr = (*out)[2];
    TowerInputs(input);
    const Matrix& a = ctr_.Forward(params, *ctr_in_, nullptr);
    const Matrix& c = cvr_.Forward(params, *cvr_in_, nullptr);
    for (Eigen::Index i = 0; i < input.rows(); ++i) {
      const T p_ctr = StableSigmoid(a(i, 0));
      const T p_cvr = StableSigmoid(c(i, 0));
      const T click = labels(i, click_col_);
      const T conversion = labels(i, conversion_col_);
      ctr.scores.push_back(static_cast<float>(p_ctr));
      ctr.labels.push_back(static_cast<float>(click));
      if (click > T(0.5)) {
        cvr.scores.push_back(static_cast<float>(p_cvr));
        cvr.labels.push_back(static_cast<float>(conversion));
      }
      ctcvr.scores.push_back(static_cast<float>(p_ctr * p_cvr));
      ctcvr.labels.push_back(static_cast<float>(click * conversion));
    }
  }

  void Predict(const T* params, const Matrix& input, Matrix* scores) override {
    CHECK_EQ(input.cols(), input_dim_);
    TowerInputs(input);
    const Matrix& a = ctr_.Forward(params, *ctr_in_, nullptr);
    const Matrix& c = cvr_.Forward(params, *cvr_in_, nullptr);
    scores->resize(input.rows(), 3);
    for (Eigen::Index i = 0; i < input.rows(); ++i) {
      // As Evaluate: float scores, pCTCVR the product of the two.
      const T p_ctr = StableSigmoid(a(i, 0));
      const T p_cvr = StableSigmoid(c(i, 0));
      (*scores)(i, 0) = p_ctr;
      (*scores)(i, 1) = p_cvr;
      (*scores)(i, 2) = p_ctr * p_cvr;
    }
  }

 private:
  int TowerInput() const { return groups_ == 1 ? input_dim_ : sparse_width_ + dense_width_; }

  void CheckShapes(const Matrix& input, const Matrix& labels) const {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_GT(labels.cols(), std::max(click_col_, conversion_col_));
  }

  // Points ctr_in_ / cvr_in_ at each tower's input: the row itself with one
  // group, else [group i | dense] copied into a workspace (whole blocks).
  void TowerInputs(const Matrix& input) {
    if (groups_ == 1) {
      ctr_in_ = &input;
      cvr_in_ = &input;
      return;
    }
    Matrix* parts[2] = {&ctr_input_, &cvr_input_};
    for (int g = 0; g < 2; ++g) {
      parts[g]->resize(input.rows(), sparse_width_ + dense_width_);
      parts[g]->leftCols(sparse_width_) = input.middleCols(g * sparse_width_, sparse_width_);
      parts[g]->rightCols(dense_width_) = input.rightCols(dense_width_);
    }
    ctr_in_ = &ctr_input_;
    cvr_in_ = &cvr_input_;
  }

  const Variant variant_;
  const int groups_;
  const int sparse_width_;
  const int dense_width_;
  const int input_dim_;
  const int click_col_;
  const int conversion_col_;
  const bool bias_prior_;
  Mlp<T> ctr_;
  Mlp<T> cvr_;
  const std::vector<std::string> loss_names_;
  const std::vector<std::string> eval_names_;
  std::mt19937_64 dropout_rng_;
  // Workspaces, reused between batches.
  const Matrix* ctr_in_ = nullptr;
  const Matrix* cvr_in_ = nullptr;
  Matrix ctr_input_;                        // two groups: [group 0 | dense]
  Matrix cvr_input_;                        // two groups: [group 1 | dense]
  Matrix ctr_grad_;                         // two groups: d loss / d ctr_input_
  Matrix cvr_grad_;                         // two groups: d loss / d cvr_input_
  Matrix da_;                               // d loss / d CTR logit, B x 1
  Matrix dc_;                               // d loss / d CVR logit, B x 1
  Matrix last_ctr_logit_, last_cvr_logit_;  // the latest training logits, B x 1
};

}  // namespace

void CheckEsmmConfig(const config::ModelConfig& config, const std::vector<std::string>& label_names,
                     ConfigProblems* problems) {
  const config::EsmmConfig& esmm = config.esmm();
  problems->AddError(LayerWidths(esmm.tower_hidden(), "model.esmm.tower_hidden").status());
  // The CTR tower learns click_label over every row; the CVR tower
  // conversion_label among the clicked rows (pCTCVR: click AND conversion).
  problems->AddError(FindLabel(label_names, esmm.click_label(), "model.esmm.click_label").status());
  problems->AddError(
      FindLabel(label_names, esmm.conversion_label(), "model.esmm.conversion_label").status());
  if (esmm.click_label() == esmm.conversion_label()) {
    problems->Add("model.esmm.conversion_label",
                  "must differ from model.esmm.click_label (both \"" + esmm.click_label() + "\")");
  }
  if (!config::EsmmConfig::Variant_IsValid(esmm.variant())) {
    problems->Add("model.esmm.variant",
                  "unknown value " + std::to_string(static_cast<int>(esmm.variant())));
  }
}

std::vector<std::string> EsmmTaskNames(const config::ModelConfig&,
                                       const std::vector<std::string>&) {
  return EsmmTasks();
}

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateEsmm(const config::ModelConfig& config,
                                               const ModelInputs& inputs,
                                               const std::vector<std::string>& label_names,
                                               uint64_t seed) {
  MTPS_RETURN_IF_ERROR(CheckModelKind(config, label_names, CheckEsmmConfig));
  const config::EsmmConfig& esmm = config.esmm();
  MTPS_ASSIGN_OR_RETURN(HiddenOptions hidden,
                        HiddenOptionsFromConfig(config, inputs.compute_threads));
  const std::vector<int> tower_hidden(esmm.tower_hidden().begin(), esmm.tower_hidden().end());
  const int click_col = LabelColumn(label_names, esmm.click_label());
  const int conversion_col = LabelColumn(label_names, esmm.conversion_label());
  return std::unique_ptr<Model<T>>(
      std::make_unique<Esmm<T>>(esmm.variant(), inputs, tower_hidden, hidden, click_col,
                                conversion_col, config.output_bias_from_prior(), seed));
}

template StatusOr<std::unique_ptr<Model<float>>> CreateEsmm<float>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);
template StatusOr<std::unique_ptr<Model<double>>> CreateEsmm<double>(
    const config::ModelConfig& config, const ModelInputs& inputs,
    const std::vector<std::string>& label_names, uint64_t seed);

}  // namespace mtps
