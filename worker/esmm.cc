// ESMM (see esmm.h); instantiated for float and double.

#include "worker/eigen.h"
#include "worker/esmm.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "worker/layers.h"

namespace mtps {
namespace {

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

// Owns its two towers and their workspaces; not thread-safe (see Model).
template <typename T>
class Esmm final : public Model<T> {
 public:
  using Matrix = RowMatrix<T>;

  Esmm(int input_dim, const std::vector<int>& tower_hidden, int click_col, int conversion_col)
      : input_dim_(input_dim),
        click_col_(click_col),
        conversion_col_(conversion_col),
        ctr_(input_dim, WithOutput(tower_hidden), Mlp<T>::Output::kLinear, 0),
        cvr_(input_dim, WithOutput(tower_hidden), Mlp<T>::Output::kLinear, ctr_.num_params()),
        loss_names_{"ctr", "ctcvr"},
        eval_names_{"ctr", "cvr", "ctcvr"} {}

  int64_t num_params() const override { return ctr_.num_params() + cvr_.num_params(); }
  int input_dim() const override { return input_dim_; }
  const std::vector<std::string>& loss_names() const override { return loss_names_; }
  const std::vector<std::string>& eval_task_names() const override { return eval_names_; }

  void InitParams(uint64_t seed, T* params) const override {
    std::mt19937_64 rng(seed);
    ctr_.InitParams(&rng, params);
    cvr_.InitParams(&rng, params);
  }

  void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels, T* param_grad,
                       Matrix* input_grad, std::vector<T>* losses) override {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_GT(labels.cols(), std::max(click_col_, conversion_col_));
    const Eigen::Index n = input.rows();
    const Matrix& a = ctr_.Forward(params, input);
    const Matrix& c = cvr_.Forward(params, input);
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
    ctr_.Backward(params, da_, param_grad, input_grad, GradMode::kOverwrite);
    cvr_.Backward(params, dc_, param_grad, input_grad, GradMode::kAccumulate);
  }

  void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                std::vector<EvalColumn>* out) override {
    CHECK_EQ(input.cols(), input_dim_);
    CHECK_EQ(labels.rows(), input.rows());
    CHECK_GT(labels.cols(), std::max(click_col_, conversion_col_));
    if (out->empty()) {
      out->resize(eval_names_.size());
      for (size_t i = 0; i < eval_names_.size(); ++i) (*out)[i].task = eval_names_[i];
    }
    CHECK_EQ(out->size(), eval_names_.size());
    EvalColumn& ctr = (*out)[0];
    EvalColumn& cvr = (*out)[1];
    EvalColumn& ctcvr = (*out)[2];
    const Matrix& a = ctr_.Forward(params, input);
    const Matrix& c = cvr_.Forward(params, input);
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

 private:
  static std::vector<int> WithOutput(std::vector<int> hidden) {
    hidden.push_back(1);
    return hidden;
  }

  const int input_dim_;
  const int click_col_;
  const int conversion_col_;
  Mlp<T> ctr_;
  Mlp<T> cvr_;
  const std::vector<std::string> loss_names_;
  const std::vector<std::string> eval_names_;
  Matrix da_;  // d loss / d CTR logit, B x 1
  Matrix dc_;  // d loss / d CVR logit, B x 1
};

StatusOr<int> FindLabel(const std::vector<std::string>& label_names, const std::string& name,
                        const std::string& field) {
  const auto it = std::find(label_names.begin(), label_names.end(), name);
  if (it == label_names.end()) {
    std::string known;
    for (const std::string& l : label_names) known += (known.empty() ? "" : ", ") + l;
    return Status::InvalidArgument(field + " \"" + name +
                                   "\" is not a data label (data.labels: " + known + ")");
  }
  return static_cast<int>(it - label_names.begin());
}

}  // namespace

template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateEsmm(const config::EsmmConfig& config, int input_dim,
                                               const std::vector<std::string>& label_names) {
  if (input_dim <= 0) {
    return Status::InvalidArgument("ESMM input_dim must be > 0, got " + std::to_string(input_dim));
  }
  const std::vector<int> hidden(config.tower_hidden().begin(), config.tower_hidden().end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(hidden, "model.esmm.tower_hidden"));
  MTPS_ASSIGN_OR_RETURN(int click_col,
                        FindLabel(label_names, config.click_label(), "model.esmm.click_label"));
  MTPS_ASSIGN_OR_RETURN(int conversion_col, FindLabel(label_names, config.conversion_label(),
                                                      "model.esmm.conversion_label"));
  if (click_col == conversion_col) {
    return Status::InvalidArgument(
        "model.esmm.click_label and model.esmm.conversion_label are "
        "both \"" +
        config.click_label() + "\"; they must differ");
  }
  return std::unique_ptr<Model<T>>(
      std::make_unique<Esmm<T>>(input_dim, hidden, click_col, conversion_col));
}

template StatusOr<std::unique_ptr<Model<float>>> CreateEsmm<float>(
    const config::EsmmConfig& config, int input_dim, const std::vector<std::string>& label_names);
template StatusOr<std::unique_ptr<Model<double>>> CreateEsmm<double>(
    const config::EsmmConfig& config, int input_dim, const std::vector<std::string>& label_names);

}  // namespace mtps
