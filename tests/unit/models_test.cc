// The model family (worker/models/esmm.h with its variants, mmoe.h, shared_bottom.h,
// ple.h, single_task.h via CreateModel): whole-model gradient checks in double
// against central finite differences (with PReLU and with dropout under a
// fixed mask too), loss terms and evaluation columns against a naive
// per-example forward pass written here from the documented parameter
// layouts, dropout only in training, batch norm (gradients through the batch
// statistics, evaluation with the running statistics against the naive pass,
// running state, batches of one row), the output-bias prior, NAIVE's masked
// CVR loss, config validation naming fields, and a short float SGD run that
// must lower the loss.

#include "worker/nn/eigen.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "worker/models/model.h"

namespace mtps {
namespace {

using Matrix = RowMatrix<double>;

// ---------------------------------------------------------------------------
// Naive reference forward passes (one example at a time, plain loops).
// ---------------------------------------------------------------------------

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// Batch norm in evaluation mode for the naive passes: the model's running
// state (means then variances of each batch norm, in layout order) and how
// much of it the layers have read.
struct NaiveNorm {
  const std::vector<double>* state = nullptr;
  int64_t at = 0;
};

// Layers W (in x out, row-major) then b, then (batch norm, hidden layers
// only) out scales and out shifts, then (PReLU, hidden layers only) out
// slopes, from params[*offset]; advances *offset. A hidden layer is every
// layer but the last, and the last too when hidden_last. With `norm`, hidden
// layers normalise with the running statistics norm->state[norm->at..]
// (advancing norm->at), eps 1e-5.
std::vector<double> NaiveMlp(const std::vector<double>& params, int64_t* offset,
                             std::vector<double> x, const std::vector<int>& widths,
                             bool hidden_last, bool prelu = false, NaiveNorm* norm = nullptr) {
  for (size_t l = 0; l < widths.size(); ++l) {
    const int in = static_cast<int>(x.size());
    const int out = widths[l];
    const double* w = params.data() + *offset;
    const double* b = w + in * out;
    *offset += in * out + out;
    const bool hidden = l + 1 < widths.size() || hidden_last;
    const double* gamma = params.data() + *offset;
    const double* beta = gamma + out;
    const double* mean = nullptr;
    const double* var = nullptr;
    if (hidden && norm != nullptr) {
      *offset += 2 * out;
      mean = norm->state->data() + norm->at;
      var = mean + out;
      norm->at += 2 * out;
    }
    const double* slopes = params.data() + *offset;
    if (hidden && prelu) *offset += out;
    std::vector<double> y(out);
    for (int j = 0; j < out; ++j) {
      double sum = b[j];
      for (int i = 0; i < in; ++i) sum += x[i] * w[i * out + j];
      if (mean != nullptr) sum = gamma[j] * (sum - mean[j]) / std::sqrt(var[j] + 1e-5) + beta[j];
      if (hidden) sum = sum > 0 ? sum : (prelu ? slopes[j] * sum : 0.0);
      y[j] = sum;
    }
    x = std::move(y);
  }
  return x;
}

std::vector<int> WithOutput(std::vector<int> widths) {
  widths.push_back(1);
  return widths;
}

std::vector<double> Softmax(const std::vector<double>& logits) {
  double max = logits[0];
  for (double l : logits) max = std::max(max, l);
  std::vector<double> p;
  double sum = 0;
  for (double l : logits) sum += std::exp(l - max);
  for (double l : logits) p.push_back(std::exp(l - max) / sum);
  return p;
}

std::vector<double> Row(const Matrix& m, int r) {
  return std::vector<double>(m.row(r).data(), m.row(r).data() + m.cols());
}

// ESMM logits (a, c) of one row: CTR tower, then CVR tower.
std::pair<double, double> NaiveEsmm(const std::vector<double>& params,
                                    const std::vector<int>& hidden, const std::vector<double>& x,
                                    NaiveNorm* norm = nullptr) {
  std::vector<int> widths = hidden;
  widths.push_back(1);
  int64_t offset = 0;
  const double a = NaiveMlp(params, &offset, x, widths, false, false, norm)[0];
  const double c = NaiveMlp(params, &offset, x, widths, false, false, norm)[0];
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return {a, c};
}

// MMOE task logits of one row: experts, then gates, then towers.
std::vector<double> NaiveMmoe(const std::vector<double>& params, int num_experts,
                              const std::vector<int>& expert_hidden,
                              const std::vector<int>& tower_hidden, int num_tasks,
                              const std::vector<double>& x, NaiveNorm* norm = nullptr) {
  int64_t offset = 0;
  std::vector<std::vector<double>> experts;
  for (int e = 0; e < num_experts; ++e) {
    experts.push_back(NaiveMlp(params, &offset, x, expert_hidden, true, false, norm));
  }
  const int h = expert_hidden.back();
  std::vector<std::vector<double>> mixed(num_tasks, std::vector<double>(h, 0.0));
  for (int k = 0; k < num_tasks; ++k) {
    const std::vector<double> logits = NaiveMlp(params, &offset, x, {num_experts}, false);
    double denom = 0;
    for (double l : logits) denom += std::exp(l);
    for (int e = 0; e < num_experts; ++e) {
      for (int j = 0; j < h; ++j) mixed[k][j] += std::exp(logits[e]) / denom * experts[e][j];
    }
  }
  std::vector<int> widths = tower_hidden;
  widths.push_back(1);
  std::vector<double> out;
  for (int k = 0; k < num_tasks; ++k) {
    out.push_back(NaiveMlp(params, &offset, mixed[k], widths, false, false, norm)[0]);
  }
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return out;
}

double NaiveBce(double p, double y) { return -(y * std::log(p) + (1 - y) * std::log(1 - p)); }

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

Matrix RandomInput(int rows, int cols, std::mt19937_64* rng) {
  std::normal_distribution<double> n(0, 1);
  Matrix m(rows, cols);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = n(*rng);
  return m;
}

// Labels in columns {conversion, other, click}: clicks and non-clicks both
// present, conversions only on clicked rows (and at least one).
Matrix EsmmLabels(int rows, std::mt19937_64* rng) {
  Matrix labels(rows, 3);
  std::bernoulli_distribution coin(0.5);
  for (int r = 0; r < rows; ++r) {
    const bool click = r == 0 || (r != 1 && coin(*rng));
    const bool conversion = click && (r == 0 || coin(*rng));
    labels(r, 0) = conversion;
    labels(r, 1) = coin(*rng);
    labels(r, 2) = click;
  }
  return labels;
}

const std::vector<std::string> kEsmmLabels = {"conversion", "other", "click"};
const std::vector<int> kEsmmHidden = {6, 4};

config::ModelConfig EsmmConfig() {
  config::ModelConfig config;
  for (int w : kEsmmHidden) config.mutable_esmm()->add_tower_hidden(w);
  return config;  // default click_label "click", conversion_label "conversion"
}

constexpr int kMmoeExperts = 3;
const std::vector<int> kMmoeExpertHidden = {5, 3};
const std::vector<int> kMmoeTowerHidden = {4};
const std::vector<std::string> kMmoeLabels = {"income", "marital"};

config::ModelConfig MmoeConfig() {
  config::ModelConfig config;
  config.mutable_mmoe()->set_num_experts(kMmoeExperts);
  for (int w : kMmoeExpertHidden) config.mutable_mmoe()->add_expert_hidden(w);
  for (int w : kMmoeTowerHidden) config.mutable_mmoe()->add_tower_hidden(w);
  return config;
}

template <typename T>
std::unique_ptr<Model<T>> MustCreate(const config::ModelConfig& config, const ModelInputs& inputs,
                                     const std::vector<std::string>& labels, uint64_t seed = 1) {
  auto model = CreateModel<T>(config, inputs, labels, seed);
  CHECK(model.ok()) << model.status();
  return std::move(model).value();
}

// One embedding group of input_dim columns.
template <typename T>
std::unique_ptr<Model<T>> MustCreate(const config::ModelConfig& config, int input_dim,
                                     const std::vector<std::string>& labels) {
  return MustCreate<T>(config, ModelInputs{input_dim, 0}, labels);
}

// Initialised parameters plus noise, so biases (and PReLU slopes) are varied.
// Two computations of the same gradient that may differ only in rounding:
// Eigen's vectorised loops peel a different number of scalar elements for a
// differently aligned output buffer, and its scalar and packet paths round
// differently (seen: 1.4e-17 on entries of 0.4). Equal to 1e-14 of the
// largest entry, so any real difference (a skipped or doubled term) fails.
void ExpectSameUpToRounding(const std::vector<double>& a, const std::vector<double>& b) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 1e-300;
  for (double v : a) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i], b[i], 1e-14 * scale) << "entry " << i;
  }
}

std::vector<double> RandomParams(const Model<double>& model, std::mt19937_64* rng) {
  std::vector<double> params(model.num_params());
  model.InitParams(42, params.data());
  std::uniform_real_distribution<double> u(-0.2, 0.2);
  for (double& p : params) p += u(*rng);
  return params;
}

// Every ForwardBackward here starts the dropout masks from this seed, so a
// model with dropout is the same function at every evaluation.
constexpr uint64_t kMaskSeed = 99;

double TotalLoss(Model<double>* model, const std::vector<double>& params, const Matrix& input,
                 const Matrix& labels) {
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
  model->SeedDropout(kMaskSeed);
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

// Central differences of the total loss w.r.t. every parameter and every
// input entry against ForwardBackward's gradients.
void CheckGradients(Model<double>* model, std::vector<double> params, Matrix input,
                    const Matrix& labels) {
  constexpr double kEps = 1e-6;
  // NaN-filled outputs: ForwardBackward must overwrite every entry.
  std::vector<double> grad(params.size(), std::nan(""));
  Matrix input_grad = Matrix::Constant(input.rows(), input.cols(), std::nan(""));
  std::vector<double> losses;
  model->SeedDropout(kMaskSeed);
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  ASSERT_EQ(input_grad.rows(), input.rows());
  ASSERT_EQ(input_grad.cols(), input.cols());
  double max_abs_grad = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const double saved = params[i];
    params[i] = saved + kEps;
    const double plus = TotalLoss(model, params, input, labels);
    params[i] = saved - kEps;
    const double minus = TotalLoss(model, params, input, labels);
    params[i] = saved;
    const double numeric = (plus - minus) / (2 * kEps);
    EXPECT_NEAR(grad[i], numeric, 1e-6 * (1 + std::abs(numeric))) << "param " << i;
    max_abs_grad = std::max(max_abs_grad, std::abs(grad[i]));
  }
  EXPECT_GT(max_abs_grad, 1e-3);  // the check is not vacuous
  double max_abs_input_grad = 0;
  for (int i = 0; i < input.size(); ++i) {
    const double saved = input.data()[i];
    input.data()[i] = saved + kEps;
    const double plus = TotalLoss(model, params, input, labels);
    input.data()[i] = saved - kEps;
    const double minus = TotalLoss(model, params, input, labels);
    input.data()[i] = saved;
    const double numeric = (plus - minus) / (2 * kEps);
    EXPECT_NEAR(input_grad.data()[i], numeric, 1e-6 * (1 + std::abs(numeric))) << "input " << i;
    max_abs_input_grad = std::max(max_abs_input_grad, std::abs(input_grad.data()[i]));
  }
  EXPECT_GT(max_abs_input_grad, 1e-4);
}

// ---------------------------------------------------------------------------
// ESMM
// ---------------------------------------------------------------------------

TEST(EsmmTest, Shape) {
  auto model = MustCreate<double>(EsmmConfig(), 5, kEsmmLabels);
  EXPECT_EQ(model->input_dim(), 5);
  const int64_t tower = (5 * 6 + 6) + (6 * 4 + 4) + (4 * 1 + 1);
  EXPECT_EQ(model->num_params(), 2 * tower);
  EXPECT_EQ(model->loss_names(), (std::vector<std::string>{"ctr", "ctcvr"}));
  EXPECT_EQ(model->eval_task_names(), (std::vector<std::string>{"ctr", "cvr", "ctcvr"}));
}

TEST(EsmmTest, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(1);
  auto model = MustCreate<double>(EsmmConfig(), 5, kEsmmLabels);
  const Matrix input = RandomInput(12, 5, &rng);
  const Matrix labels = EsmmLabels(12, &rng);
  CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
}

TEST(EsmmTest, LossTermsMatchDirectComputation) {
  std::mt19937_64 rng(2);
  const int n = 20;
  auto model = MustCreate<double>(EsmmConfig(), 5, kEsmmLabels);
  const std::vector<double> params = RandomParams(*model, &rng);
  const Matrix input = RandomInput(n, 5, &rng);
  const Matrix labels = EsmmLabels(n, &rng);
  double ctr = 0, ctcvr = 0;
  for (int r = 0; r < n; ++r) {
    const auto [a, c] = NaiveEsmm(params, kEsmmHidden, Row(input, r));
    const double click = labels(r, 2), conversion = labels(r, 0);
    ctr += NaiveBce(Sigmoid(a), click);
    ctcvr += NaiveBce(Sigmoid(a) * Sigmoid(c), click * conversion);
  }
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_NEAR(losses[0], ctr / n, 1e-10);
  EXPECT_NEAR(losses[1], ctcvr / n, 1e-10);
}

TEST(EsmmTest, CtcvrLossStableForSaturatedTowers) {
  // Both towers output the logit 40 on every row (zero output weights, bias
  // 40): 1 - pCTCVR ~ 2e-40 underflows to 0 in 1 - s*s, but not in ESMM.
  std::mt19937_64 rng(3);
  const int n = 6;
  auto model = MustCreate<double>(EsmmConfig(), 5, kEsmmLabels);
  std::vector<double> params = RandomParams(*model, &rng);
  const int64_t tower = model->num_params() / 2;
  for (int64_t t : {tower, 2 * tower}) {
    for (int64_t i = t - 5; i < t - 1; ++i) params[i] = 0;  // output weights (4)
    params[t - 1] = 40;                                     // output bias
  }
  const Matrix input = RandomInput(n, 5, &rng);
  Matrix labels = Matrix::Zero(n, 3);
  labels(0, 2) = labels(0, 0) = 1;  // row 0 converts; rows 1..5 do not click
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  const double log_s = -std::log1p(std::exp(-40.0));         // log sigmoid(40)
  const double log_1ms = -40 - std::log1p(std::exp(-40.0));  // log sigmoid(-40)
  // -log(1 - s^2) = -log((1 - s)(1 + s)).
  const double negative_row = -(log_1ms + std::log1p(std::exp(log_s)));
  const double expected_ctcvr = (-2 * log_s + (n - 1) * negative_row) / n;
  EXPECT_NEAR(losses[1], expected_ctcvr, 1e-9 * expected_ctcvr);
  EXPECT_GT(losses[1], 30);
  for (double g : grad) EXPECT_TRUE(std::isfinite(g));
  EXPECT_TRUE(input_grad.allFinite());
}

TEST(EsmmTest, EvaluateColumns) {
  std::mt19937_64 rng(4);
  const int n = 15;
  auto model = MustCreate<double>(EsmmConfig(), 5, kEsmmLabels);
  const std::vector<double> params = RandomParams(*model, &rng);
  const Matrix input = RandomInput(n, 5, &rng);
  const Matrix labels = EsmmLabels(n, &rng);
  std::vector<EvalColumn> out;
  model->Evaluate(params.data(), input, labels, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].task, "ctr");
  EXPECT_EQ(out[1].task, "cvr");
  EXPECT_EQ(out[2].task, "ctcvr");
  std::vector<float> cvr_scores, cvr_labels;
  ASSERT_EQ(out[0].scores.size(), static_cast<size_t>(n));
  ASSERT_EQ(out[2].scores.size(), static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    const auto [a, c] = NaiveEsmm(params, kEsmmHidden, Row(input, r));
    EXPECT_NEAR(out[0].scores[r], Sigmoid(a), 1e-6);
    EXPECT_EQ(out[0].labels[r], labels(r, 2));
    EXPECT_NEAR(out[2].scores[r], Sigmoid(a) * Sigmoid(c), 1e-6);
    EXPECT_EQ(out[2].labels[r], labels(r, 2) * labels(r, 0));
    if (labels(r, 2) == 1) {
      cvr_scores.push_back(static_cast<float>(Sigmoid(c)));
      cvr_labels.push_back(static_cast<float>(labels(r, 0)));
    }
  }
  // cvr: clicked rows only, in order.
  ASSERT_LT(cvr_scores.size(), static_cast<size_t>(n));
  ASSERT_EQ(out[1].scores.size(), cvr_scores.size());
  EXPECT_EQ(out[1].labels, cvr_labels);
  for (size_t i = 0; i < cvr_scores.size(); ++i) EXPECT_NEAR(out[1].scores[i], cvr_scores[i], 1e-6);
  // A second call appends.
  model->Evaluate(params.data(), input, labels, &out);
  EXPECT_EQ(out[0].scores.size(), static_cast<size_t>(2 * n));
  EXPECT_EQ(out[1].scores.size(), 2 * cvr_scores.size());
}

// ---------------------------------------------------------------------------
// MMOE
// ---------------------------------------------------------------------------

Matrix RandomLabels(int rows, int cols, std::mt19937_64* rng) {
  std::bernoulli_distribution coin(0.5);
  Matrix labels(rows, cols);
  for (int i = 0; i < labels.size(); ++i) labels.data()[i] = coin(*rng);
  labels(0, 0) = 1;
  labels(1, 0) = 0;
  return labels;
}

TEST(MmoeTest, Shape) {
  auto model = MustCreate<double>(MmoeConfig(), 6, kMmoeLabels);
  const int64_t expert = (6 * 5 + 5) + (5 * 3 + 3);
  const int64_t gate = 6 * 3 + 3;
  const int64_t tower = (3 * 4 + 4) + (4 + 1);
  EXPECT_EQ(model->num_params(), 3 * expert + 2 * gate + 2 * tower);
  EXPECT_EQ(model->loss_names(), kMmoeLabels);
  EXPECT_EQ(model->eval_task_names(), kMmoeLabels);
}

TEST(MmoeTest, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(5);
  auto model = MustCreate<double>(MmoeConfig(), 6, kMmoeLabels);
  const Matrix input = RandomInput(10, 6, &rng);
  const Matrix labels = RandomLabels(10, 2, &rng);
  CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
}

TEST(MmoeTest, LossTermsAndEvaluateMatchDirectComputation) {
  std::mt19937_64 rng(6);
  const int n = 16;
  auto model = MustCreate<double>(MmoeConfig(), 6, kMmoeLabels);
  const std::vector<double> params = RandomParams(*model, &rng);
  const Matrix input = RandomInput(n, 6, &rng);
  const Matrix labels = RandomLabels(n, 2, &rng);
  std::vector<double> expected(2, 0.0);
  std::vector<std::vector<double>> scores(2);
  for (int r = 0; r < n; ++r) {
    const std::vector<double> logits =
        NaiveMmoe(params, kMmoeExperts, kMmoeExpertHidden, kMmoeTowerHidden, 2, Row(input, r));
    for (int k = 0; k < 2; ++k) {
      expected[k] += NaiveBce(Sigmoid(logits[k]), labels(r, k)) / n;
      scores[k].push_back(Sigmoid(logits[k]));
    }
  }
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_NEAR(losses[0], expected[0], 1e-10);
  EXPECT_NEAR(losses[1], expected[1], 1e-10);

  std::vector<EvalColumn> out;
  model->Evaluate(params.data(), input, labels, &out);
  ASSERT_EQ(out.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(out[k].task, kMmoeLabels[k]);
    ASSERT_EQ(out[k].scores.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      EXPECT_NEAR(out[k].scores[r], scores[k][r], 1e-6);
      EXPECT_EQ(out[k].labels[r], labels(r, k));
    }
  }
}

// ---------------------------------------------------------------------------
// ESMM variants: NO_SHARING and NAIVE (two embedding groups)
// ---------------------------------------------------------------------------

// Two groups of 4 sparse columns, then 2 dense: rows are [g0 (4) | g1 (4) | dense (2)].
const ModelInputs kTwoGroupInputs{4, 2};
constexpr int kTwoGroupDim = 2 * 4 + 2;

config::ModelConfig EsmmVariantConfig(config::EsmmConfig::Variant variant) {
  config::ModelConfig config = EsmmConfig();
  config.mutable_esmm()->set_variant(variant);
  return config;
}

// [group `group` | dense] of one row.
std::vector<double> TowerRow(const Matrix& input, int r, int group) {
  std::vector<double> x;
  for (int j = 0; j < kTwoGroupInputs.sparse_width; ++j) {
    x.push_back(input(r, group * kTwoGroupInputs.sparse_width + j));
  }
  for (int j = 0; j < kTwoGroupInputs.dense_width; ++j) {
    x.push_back(input(r, 2 * kTwoGroupInputs.sparse_width + j));
  }
  return x;
}

// Logits (a, c) of a two-group ESMM variant: CTR tower on [g0 | dense], CVR
// tower on [g1 | dense].
std::pair<double, double> NaiveTwoGroupEsmm(const std::vector<double>& params, const Matrix& input,
                                            int r) {
  int64_t offset = 0;
  const double a =
      NaiveMlp(params, &offset, TowerRow(input, r, 0), WithOutput(kEsmmHidden), false)[0];
  const double c =
      NaiveMlp(params, &offset, TowerRow(input, r, 1), WithOutput(kEsmmHidden), false)[0];
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return {a, c};
}

TEST(EsmmVariantTest, Shape) {
  for (auto variant : {config::EsmmConfig::NO_SHARING, config::EsmmConfig::NAIVE}) {
    auto model = MustCreate<double>(EsmmVariantConfig(variant), kTwoGroupInputs, kEsmmLabels);
    EXPECT_EQ(model->embedding_groups(), 2);
    EXPECT_EQ(model->input_dim(), kTwoGroupDim);
    const int64_t tower = (6 * 6 + 6) + (6 * 4 + 4) + (4 * 1 + 1);
    EXPECT_EQ(model->num_params(), 2 * tower);
    EXPECT_EQ(model->eval_task_names(), (std::vector<std::string>{"ctr", "cvr", "ctcvr"}));
  }
  EXPECT_EQ(
      MustCreate<double>(EsmmVariantConfig(config::EsmmConfig::NAIVE), kTwoGroupInputs, kEsmmLabels)
          ->loss_names(),
      (std::vector<std::string>{"ctr", "cvr"}));
  EXPECT_EQ(MustCreate<double>(EsmmVariantConfig(config::EsmmConfig::NO_SHARING), kTwoGroupInputs,
                               kEsmmLabels)
                ->loss_names(),
            (std::vector<std::string>{"ctr", "ctcvr"}));
  auto esmm = MustCreate<double>(EsmmConfig(), kTwoGroupInputs, kEsmmLabels);
  EXPECT_EQ(esmm->embedding_groups(), 1);
  EXPECT_EQ(esmm->input_dim(), 4 + 2);
}

TEST(EsmmVariantTest, GradientsMatchFiniteDifferences) {
  for (auto variant : {config::EsmmConfig::NO_SHARING, config::EsmmConfig::NAIVE}) {
    SCOPED_TRACE(config::EsmmConfig::Variant_Name(variant));
    std::mt19937_64 rng(31);
    config::ModelConfig config = EsmmVariantConfig(variant);
    config.set_activation(config::ModelConfig::PRELU);
    auto model = MustCreate<double>(config, kTwoGroupInputs, kEsmmLabels);
    const Matrix input = RandomInput(12, kTwoGroupDim, &rng);
    const Matrix labels = EsmmLabels(12, &rng);
    CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
  }
}

TEST(EsmmVariantTest, LossTermsAndEvaluateMatchDirectComputation) {
  for (auto variant : {config::EsmmConfig::NO_SHARING, config::EsmmConfig::NAIVE}) {
    SCOPED_TRACE(config::EsmmConfig::Variant_Name(variant));
    std::mt19937_64 rng(32);
    const int n = 20;
    auto model = MustCreate<double>(EsmmVariantConfig(variant), kTwoGroupInputs, kEsmmLabels);
    const std::vector<double> params = RandomParams(*model, &rng);
    const Matrix input = RandomInput(n, kTwoGroupDim, &rng);
    const Matrix labels = EsmmLabels(n, &rng);
    double ctr = 0, second = 0;
    int clicks = 0;
    std::vector<double> p_ctr, p_cvr;
    for (int r = 0; r < n; ++r) {
      const auto [a, c] = NaiveTwoGroupEsmm(params, input, r);
      const double click = labels(r, 2), conversion = labels(r, 0);
      p_ctr.push_back(Sigmoid(a));
      p_cvr.push_back(Sigmoid(c));
      ctr += NaiveBce(Sigmoid(a), click);
      if (variant == config::EsmmConfig::NAIVE) {
        if (click == 1) {
          second += NaiveBce(Sigmoid(c), conversion);
          ++clicks;
        }
      } else {
        second += NaiveBce(Sigmoid(a) * Sigmoid(c), click * conversion);
      }
    }
    ASSERT_GT(clicks + (variant == config::EsmmConfig::NAIVE ? 0 : 1), 0);
    ASSERT_LT(clicks, n);
    std::vector<double> grad(params.size());
    Matrix input_grad;
    std::vector<double> losses;
    model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
    ASSERT_EQ(losses.size(), 2u);
    EXPECT_NEAR(losses[0], ctr / n, 1e-10);
    EXPECT_NEAR(losses[1], variant == config::EsmmConfig::NAIVE ? second / clicks : second / n,
                1e-10);
    // Evaluation exactly as ESMM: ctr all rows, cvr clicked rows, ctcvr = pCTR * pCVR.
    std::vector<EvalColumn> out;
    model->Evaluate(params.data(), input, labels, &out);
    ASSERT_EQ(out.size(), 3u);
    ASSERT_EQ(out[0].scores.size(), static_cast<size_t>(n));
    ASSERT_EQ(out[2].scores.size(), static_cast<size_t>(n));
    size_t cvr_i = 0;
    for (int r = 0; r < n; ++r) {
      EXPECT_NEAR(out[0].scores[r], p_ctr[r], 1e-6);
      EXPECT_NEAR(out[2].scores[r], p_ctr[r] * p_cvr[r], 1e-6);
      EXPECT_EQ(out[2].labels[r], labels(r, 2) * labels(r, 0));
      if (labels(r, 2) == 1) {
        ASSERT_LT(cvr_i, out[1].scores.size());
        EXPECT_NEAR(out[1].scores[cvr_i], p_cvr[r], 1e-6);
        EXPECT_EQ(out[1].labels[cvr_i], labels(r, 0));
        ++cvr_i;
      }
    }
    EXPECT_EQ(cvr_i, out[1].scores.size());
  }
}

TEST(EsmmVariantTest, NaiveCvrLossIgnoresUnclickedRows) {
  std::mt19937_64 rng(33);
  const int n = 16;
  auto model = MustCreate<double>(EsmmVariantConfig(config::EsmmConfig::NAIVE), kTwoGroupInputs,
                                  kEsmmLabels);
  const std::vector<double> params = RandomParams(*model, &rng);
  const Matrix input = RandomInput(n, kTwoGroupDim, &rng);
  const Matrix labels = EsmmLabels(n, &rng);
  auto run = [&](const Matrix& in, const Matrix& lab, std::vector<double>* grad,
                 Matrix* input_grad) {
    grad->assign(params.size(), 0);
    std::vector<double> losses;
    model->ForwardBackward(params.data(), in, lab, grad->data(), input_grad, &losses);
    return losses;
  };
  std::vector<double> grad, changed_grad;
  Matrix input_grad, changed_input_grad;
  const std::vector<double> losses = run(input, labels, &grad, &input_grad);
  // Unclicked rows: flip the conversion label and redraw the CVR tower's
  // embeddings (group 1).
  Matrix changed_input = input, changed_labels = labels;
  int unclicked = 0;
  for (int r = 0; r < n; ++r) {
    if (labels(r, 2) == 1) continue;
    ++unclicked;
    changed_labels(r, 0) = 1 - labels(r, 0);
    for (int j = 0; j < kTwoGroupInputs.sparse_width; ++j) {
      changed_input(r, kTwoGroupInputs.sparse_width + j) = 50 * (j + 1);
    }
  }
  ASSERT_GT(unclicked, 0);
  const std::vector<double> changed =
      run(changed_input, changed_labels, &changed_grad, &changed_input_grad);
  EXPECT_DOUBLE_EQ(changed[0], losses[0]);
  EXPECT_DOUBLE_EQ(changed[1], losses[1]);
  for (size_t i = 0; i < grad.size(); ++i) EXPECT_NEAR(changed_grad[i], grad[i], 1e-14) << i;
  EXPECT_LT((changed_input_grad - input_grad).cwiseAbs().maxCoeff(), 1e-14);
  // Not vacuous: a clicked row's conversion does move the cvr loss.
  int clicked = 0;
  while (labels(clicked, 2) != 1) ++clicked;
  changed_labels(clicked, 0) = 1 - labels(clicked, 0);
  EXPECT_NE(run(changed_input, changed_labels, &changed_grad, &changed_input_grad)[1], losses[1]);
  // No click in the batch: cvr loss 0 with zero gradient on the CVR tower.
  Matrix no_clicks = labels;
  no_clicks.col(2).setZero();
  no_clicks.col(0).setZero();
  const std::vector<double> none = run(input, no_clicks, &grad, &input_grad);
  EXPECT_EQ(none[1], 0.0);
  for (size_t i = grad.size() / 2; i < grad.size(); ++i) EXPECT_EQ(grad[i], 0.0) << i;
  EXPECT_EQ(input_grad.middleCols(kTwoGroupInputs.sparse_width, kTwoGroupInputs.sparse_width)
                .cwiseAbs()
                .maxCoeff(),
            0.0);
}

// ---------------------------------------------------------------------------
// Shared-Bottom
// ---------------------------------------------------------------------------

const std::vector<int> kSbBottom = {6, 4};
const std::vector<int> kSbTower = {3};
const std::vector<std::string> kSbLabels = {"a", "b", "c"};

config::ModelConfig SharedBottomConfig(bool prelu = false) {
  config::ModelConfig config;
  for (int w : kSbBottom) config.mutable_shared_bottom()->add_bottom_hidden(w);
  for (int w : kSbTower) config.mutable_shared_bottom()->add_tower_hidden(w);
  if (prelu) config.set_activation(config::ModelConfig::PRELU);
  return config;
}

std::vector<double> NaiveSharedBottom(const std::vector<double>& params, bool prelu,
                                      const std::vector<double>& x) {
  int64_t offset = 0;
  const std::vector<double> h = NaiveMlp(params, &offset, x, kSbBottom, true, prelu);
  std::vector<double> logits;
  for (size_t k = 0; k < kSbLabels.size(); ++k) {
    logits.push_back(NaiveMlp(params, &offset, h, WithOutput(kSbTower), false, prelu)[0]);
  }
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return logits;
}

// Loss terms (mean BCE per task over every row) and Evaluate columns of a
// one-task-per-label model against per-row logits from `naive`.
void ExpectMultiTaskLossesAndEvaluate(
    Model<double>* model, const std::vector<double>& params, const Matrix& input,
    const Matrix& labels, const std::vector<std::string>& names,
    const std::function<std::vector<double>(const std::vector<double>&)>& naive) {
  const int n = static_cast<int>(input.rows());
  const size_t k_tasks = names.size();
  std::vector<double> expected(k_tasks, 0.0);
  std::vector<std::vector<double>> scores(k_tasks);
  for (int r = 0; r < n; ++r) {
    const std::vector<double> logits = naive(Row(input, r));
    ASSERT_EQ(logits.size(), k_tasks);
    for (size_t k = 0; k < k_tasks; ++k) {
      expected[k] += NaiveBce(Sigmoid(logits[k]), labels(r, k)) / n;
      scores[k].push_back(Sigmoid(logits[k]));
    }
  }
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  EXPECT_EQ(model->loss_names(), names);
  ASSERT_EQ(losses.size(), k_tasks);
  for (size_t k = 0; k < k_tasks; ++k) EXPECT_NEAR(losses[k], expected[k], 1e-10) << names[k];
  std::vector<EvalColumn> out;
  model->Evaluate(params.data(), input, labels, &out);
  ASSERT_EQ(out.size(), k_tasks);
  for (size_t k = 0; k < k_tasks; ++k) {
    EXPECT_EQ(out[k].task, names[k]);
    ASSERT_EQ(out[k].scores.size(), static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      EXPECT_NEAR(out[k].scores[r], scores[k][r], 1e-6);
      EXPECT_EQ(out[k].labels[r], labels(r, k));
    }
  }
}

TEST(SharedBottomTest, Shape) {
  auto model = MustCreate<double>(SharedBottomConfig(), 5, kSbLabels);
  const int64_t bottom = (5 * 6 + 6) + (6 * 4 + 4);
  const int64_t tower = (4 * 3 + 3) + (3 + 1);
  EXPECT_EQ(model->num_params(), bottom + 3 * tower);
  EXPECT_EQ(model->eval_task_names(), kSbLabels);
  EXPECT_EQ(model->embedding_groups(), 1);
  // PReLU: one slope per hidden unit (bottom 6 + 4, each tower 3).
  auto prelu = MustCreate<double>(SharedBottomConfig(true), 5, kSbLabels);
  EXPECT_EQ(prelu->num_params(), bottom + 3 * tower + 10 + 3 * 3);
}

TEST(SharedBottomTest, GradientsMatchFiniteDifferences) {
  for (bool prelu : {false, true}) {
    SCOPED_TRACE(prelu ? "prelu" : "relu");
    std::mt19937_64 rng(41);
    auto model = MustCreate<double>(SharedBottomConfig(prelu), 5, kSbLabels);
    const Matrix input = RandomInput(10, 5, &rng);
    const Matrix labels = RandomLabels(10, 3, &rng);
    CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
  }
}

TEST(SharedBottomTest, LossTermsAndEvaluateMatchDirectComputation) {
  for (bool prelu : {false, true}) {
    SCOPED_TRACE(prelu ? "prelu" : "relu");
    std::mt19937_64 rng(42);
    auto model = MustCreate<double>(SharedBottomConfig(prelu), 5, kSbLabels);
    const std::vector<double> params = RandomParams(*model, &rng);
    ExpectMultiTaskLossesAndEvaluate(
        model.get(), params, RandomInput(15, 5, &rng), RandomLabels(15, 3, &rng), kSbLabels,
        [&](const std::vector<double>& x) { return NaiveSharedBottom(params, prelu, x); });
  }
}

// ---------------------------------------------------------------------------
// PLE
// ---------------------------------------------------------------------------

struct PleShape {
  int levels;
  int task_experts;
  int shared_experts;
};
const std::vector<int> kPleExpertHidden = {4, 3};
const std::vector<int> kPleTowerHidden = {3};

config::ModelConfig PleConfig(const PleShape& shape, bool prelu = false) {
  config::ModelConfig config;
  config::PleConfig* ple = config.mutable_ple();
  ple->set_num_levels(shape.levels);
  ple->set_task_experts(shape.task_experts);
  ple->set_shared_experts(shape.shared_experts);
  for (int w : kPleExpertHidden) ple->add_expert_hidden(w);
  for (int w : kPleTowerHidden) ple->add_tower_hidden(w);
  if (prelu) config.set_activation(config::ModelConfig::PRELU);
  return config;
}

// PLE task logits of one row, from the description and layout in ple.h.
std::vector<double> NaivePle(const std::vector<double>& params, const PleShape& shape,
                             int num_tasks, bool prelu, const std::vector<double>& x,
                             NaiveNorm* norm = nullptr) {
  const int te = shape.task_experts, se = shape.shared_experts;
  const int num_experts = num_tasks * te + se;
  int64_t offset = 0;
  std::vector<std::vector<double>> task_in(num_tasks, x);
  std::vector<double> shared_in = x;
  auto mix = [](const std::vector<double>& weights,
                const std::vector<const std::vector<double>*>& outs) {
    std::vector<double> mixed(outs[0]->size(), 0.0);
    for (size_t j = 0; j < outs.size(); ++j) {
      for (size_t d = 0; d < mixed.size(); ++d) mixed[d] += weights[j] * (*outs[j])[d];
    }
    return mixed;
  };
  for (int l = 0; l < shape.levels; ++l) {
    std::vector<std::vector<double>> experts;
    for (int e = 0; e < num_experts; ++e) {
      const std::vector<double>& in = e < num_tasks * te ? task_in[e / te] : shared_in;
      experts.push_back(NaiveMlp(params, &offset, in, kPleExpertHidden, true, prelu, norm));
    }
    std::vector<std::vector<double>> task_out;
    for (int k = 0; k < num_tasks; ++k) {
      const std::vector<double> weights =
          Softmax(NaiveMlp(params, &offset, task_in[k], {te + se}, false));
      std::vector<const std::vector<double>*> members;
      for (int j = 0; j < te; ++j) members.push_back(&experts[k * te + j]);
      for (int j = 0; j < se; ++j) members.push_back(&experts[num_tasks * te + j]);
      task_out.push_back(mix(weights, members));
    }
    if (l + 1 < shape.levels && se > 0) {
      const std::vector<double> weights =
          Softmax(NaiveMlp(params, &offset, shared_in, {num_experts}, false));
      std::vector<const std::vector<double>*> members;
      for (const auto& e : experts) members.push_back(&e);
      shared_in = mix(weights, members);
    }
    task_in = task_out;
  }
  std::vector<double> logits;
  for (int k = 0; k < num_tasks; ++k) {
    logits.push_back(
        NaiveMlp(params, &offset, task_in[k], WithOutput(kPleTowerHidden), false, prelu, norm)[0]);
  }
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return logits;
}

// 2 levels with task and shared experts; only shared experts over 3 levels;
// only task experts over 2 levels (no shared gate at all).
const std::vector<PleShape> kPleShapes = {{2, 2, 1}, {3, 0, 2}, {2, 1, 0}};

TEST(PleTest, Shape) {
  auto model = MustCreate<double>(PleConfig(kPleShapes[0]), 5, kMmoeLabels);
  const int64_t expert0 = (5 * 4 + 4) + (4 * 3 + 3);
  const int64_t expert1 = (3 * 4 + 4) + (4 * 3 + 3);
  const int64_t level0 = 5 * expert0 + 2 * (5 * 3 + 3) + (5 * 5 + 5);  // + shared gate
  const int64_t level1 = 5 * expert1 + 2 * (3 * 3 + 3);                // top: no shared gate
  const int64_t tower = (3 * 3 + 3) + (3 + 1);
  EXPECT_EQ(model->num_params(), level0 + level1 + 2 * tower);
  EXPECT_EQ(model->loss_names(), kMmoeLabels);
  EXPECT_EQ(model->eval_task_names(), kMmoeLabels);
}

TEST(PleTest, GradientsMatchFiniteDifferences) {
  for (const PleShape& shape : kPleShapes) {
    for (bool prelu : {false, true}) {
      SCOPED_TRACE(testing::Message()
                   << "levels " << shape.levels << " task " << shape.task_experts << " shared "
                   << shape.shared_experts << (prelu ? " prelu" : " relu"));
      std::mt19937_64 rng(51);
      auto model = MustCreate<double>(PleConfig(shape, prelu), 5, kMmoeLabels);
      const Matrix input = RandomInput(8, 5, &rng);
      const Matrix labels = RandomLabels(8, 2, &rng);
      CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
    }
  }
}

TEST(PleTest, LossTermsAndEvaluateMatchDirectComputation) {
  const std::vector<std::string> three = {"t0", "t1", "t2"};
  for (const PleShape& shape : kPleShapes) {
    for (bool prelu : {false, true}) {
      SCOPED_TRACE(testing::Message() << "levels " << shape.levels << " task " << shape.task_experts
                                      << " shared " << shape.shared_experts);
      std::mt19937_64 rng(52);
      auto model = MustCreate<double>(PleConfig(shape, prelu), 5, three);
      const std::vector<double> params = RandomParams(*model, &rng);
      ExpectMultiTaskLossesAndEvaluate(
          model.get(), params, RandomInput(14, 5, &rng), RandomLabels(14, 3, &rng), three,
          [&](const std::vector<double>& x) { return NaivePle(params, shape, 3, prelu, x); });
    }
  }
}

// ---------------------------------------------------------------------------
// Single-task
// ---------------------------------------------------------------------------

const std::vector<int> kStHidden = {5, 3};

// Predicts "conversion" (column 0 of kEsmmLabels), optionally only where "click".
config::ModelConfig SingleTaskConfig(bool only_where) {
  config::ModelConfig config;
  config.mutable_single_task()->set_label("conversion");
  for (int w : kStHidden) config.mutable_single_task()->add_hidden(w);
  if (only_where) config.mutable_single_task()->set_only_where("click");
  return config;
}

TEST(SingleTaskTest, Shape) {
  auto model = MustCreate<double>(SingleTaskConfig(true), 5, kEsmmLabels);
  EXPECT_EQ(model->num_params(), (5 * 5 + 5) + (5 * 3 + 3) + (3 + 1));
  EXPECT_EQ(model->loss_names(), (std::vector<std::string>{"conversion"}));
  EXPECT_EQ(model->eval_task_names(), (std::vector<std::string>{"conversion"}));
}

TEST(SingleTaskTest, GradientsMatchFiniteDifferences) {
  for (bool only_where : {false, true}) {
    SCOPED_TRACE(only_where ? "only_where" : "all rows");
    std::mt19937_64 rng(61);
    auto model = MustCreate<double>(SingleTaskConfig(only_where), 5, kEsmmLabels);
    const Matrix input = RandomInput(12, 5, &rng);
    const Matrix labels = EsmmLabels(12, &rng);
    CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
  }
}

TEST(SingleTaskTest, LossAndEvaluateMatchDirectComputation) {
  for (bool only_where : {false, true}) {
    SCOPED_TRACE(only_where ? "only_where" : "all rows");
    std::mt19937_64 rng(62);
    const int n = 18;
    auto model = MustCreate<double>(SingleTaskConfig(only_where), 5, kEsmmLabels);
    const std::vector<double> params = RandomParams(*model, &rng);
    const Matrix input = RandomInput(n, 5, &rng);
    const Matrix labels = EsmmLabels(n, &rng);
    double sum = 0;
    int count = 0;
    std::vector<float> scores, score_labels;
    for (int r = 0; r < n; ++r) {
      if (only_where && labels(r, 2) != 1) continue;
      int64_t offset = 0;
      const double z = NaiveMlp(params, &offset, Row(input, r), WithOutput(kStHidden), false)[0];
      sum += NaiveBce(Sigmoid(z), labels(r, 0));
      ++count;
      scores.push_back(static_cast<float>(Sigmoid(z)));
      score_labels.push_back(static_cast<float>(labels(r, 0)));
    }
    ASSERT_GT(count, 0);
    if (only_where) {
      ASSERT_LT(count, n);
    }
    std::vector<double> grad(params.size());
    Matrix input_grad;
    std::vector<double> losses;
    model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
    ASSERT_EQ(losses.size(), 1u);
    EXPECT_NEAR(losses[0], sum / count, 1e-10);
    // Rows outside only_where get no input gradient.
    for (int r = 0; r < n; ++r) {
      if (only_where && labels(r, 2) != 1) {
        EXPECT_EQ(input_grad.row(r).cwiseAbs().maxCoeff(), 0.0);
      }
    }
    std::vector<EvalColumn> out;
    model->Evaluate(params.data(), input, labels, &out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].task, "conversion");
    EXPECT_EQ(out[0].labels, score_labels);
    ASSERT_EQ(out[0].scores.size(), scores.size());
    for (size_t i = 0; i < scores.size(); ++i) EXPECT_NEAR(out[0].scores[i], scores[i], 1e-6);
  }
}

TEST(SingleTaskTest, OnlyWhereWithNoRowsGivesZeroLossAndGradient) {
  std::mt19937_64 rng(63);
  auto model = MustCreate<double>(SingleTaskConfig(true), 5, kEsmmLabels);
  const std::vector<double> params = RandomParams(*model, &rng);
  const Matrix input = RandomInput(9, 5, &rng);
  Matrix labels = EsmmLabels(9, &rng);
  labels.col(2).setZero();  // no click
  labels.col(0).setConstant(1);
  std::vector<double> grad(params.size(), std::nan(""));
  Matrix input_grad;
  std::vector<double> losses;
  model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
  ASSERT_EQ(losses.size(), 1u);
  EXPECT_EQ(losses[0], 0.0);
  for (double g : grad) EXPECT_EQ(g, 0.0);
  EXPECT_EQ(input_grad.cwiseAbs().maxCoeff(), 0.0);
  std::vector<EvalColumn> out;
  model->Evaluate(params.data(), input, labels, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].scores.empty());
}

// ---------------------------------------------------------------------------
// Every model kind
// ---------------------------------------------------------------------------

// A model config with the data it runs on and where its output biases are
// (offsets from the documented layouts) with the label rate each should get.
struct Case {
  std::string name;
  config::ModelConfig config;
  ModelInputs inputs;
  std::vector<std::string> labels;
  bool esmm_labels;  // labels from EsmmLabels, else RandomLabels
  // (bias offset, label column, only-where column or -1), given num_params.
  std::function<std::vector<std::array<int64_t, 3>>(int64_t)> biases;
};

std::vector<Case> AllCases() {
  const int64_t esmm_tower = (5 * 6 + 6) + (6 * 4 + 4) + (4 + 1);
  const int64_t variant_tower = (6 * 6 + 6) + (6 * 4 + 4) + (4 + 1);
  auto esmm_biases = [](int64_t tower) {
    return [tower](int64_t) {
      return std::vector<std::array<int64_t, 3>>{{tower - 1, 2, -1}, {2 * tower - 1, 0, 2}};
    };
  };
  // Towers of size `tower` at the end of the array, one per label.
  auto tail_biases = [](int64_t tower, int tasks) {
    return [tower, tasks](int64_t total) {
      std::vector<std::array<int64_t, 3>> out;
      for (int k = 0; k < tasks; ++k) out.push_back({total - (tasks - 1 - k) * tower - 1, k, -1});
      return out;
    };
  };
  std::vector<Case> cases;
  cases.push_back({"esmm", EsmmConfig(), {5, 0}, kEsmmLabels, true, esmm_biases(esmm_tower)});
  cases.push_back({"esmm_no_sharing", EsmmVariantConfig(config::EsmmConfig::NO_SHARING),
                   kTwoGroupInputs, kEsmmLabels, true, esmm_biases(variant_tower)});
  cases.push_back({"esmm_naive", EsmmVariantConfig(config::EsmmConfig::NAIVE), kTwoGroupInputs,
                   kEsmmLabels, true, esmm_biases(variant_tower)});
  cases.push_back(
      {"mmoe", MmoeConfig(), {5, 0}, kMmoeLabels, false, tail_biases((3 * 4 + 4) + (4 + 1), 2)});
  cases.push_back({"shared_bottom",
                   SharedBottomConfig(),
                   {3, 2},
                   kSbLabels,
                   false,
                   tail_biases((4 * 3 + 3) + (3 + 1), 3)});
  cases.push_back({"ple",
                   PleConfig(kPleShapes[0]),
                   {5, 0},
                   kMmoeLabels,
                   false,
                   tail_biases((3 * 3 + 3) + (3 + 1), 2)});
  cases.push_back(
      {"single_task", SingleTaskConfig(false), {5, 0}, kEsmmLabels, true, [](int64_t total) {
         return std::vector<std::array<int64_t, 3>>{{total - 1, 0, -1}};
       }});
  cases.push_back({"single_task_only_where",
                   SingleTaskConfig(true),
                   {5, 0},
                   kEsmmLabels,
                   true,
                   [](int64_t total) {
                     return std::vector<std::array<int64_t, 3>>{{total - 1, 0, 2}};
                   }});
  return cases;
}

Matrix CaseLabels(const Case& c, int rows, std::mt19937_64* rng) {
  return c.esmm_labels ? EsmmLabels(rows, rng)
                       : RandomLabels(rows, static_cast<int>(c.labels.size()), rng);
}

int InputDim(const ModelInputs& inputs, int groups) {
  return groups * inputs.sparse_width + inputs.dense_width;
}

TEST(AllModelsTest, InitOutputBiasesGivesTheSampleRate) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(71);
    auto model = MustCreate<double>(c.config, c.inputs, c.labels);
    std::vector<double> params(model->num_params());
    model->InitParams(5, params.data());
    const std::vector<double> initial = params;
    const Matrix sample = CaseLabels(c, 300, &rng);
    model->InitOutputBiases(sample, params.data());
    const auto biases = c.biases(model->num_params());
    ASSERT_EQ(biases.size(), model->loss_names().size());  // one output bias per tower
    std::vector<bool> is_bias(params.size(), false);
    for (const auto& [offset, column, where] : biases) {
      ASSERT_LT(offset, static_cast<int64_t>(params.size()));
      is_bias[offset] = true;
      EXPECT_EQ(initial[offset], 0.0) << "InitParams leaves output biases at 0";
      double positives = 0, total = 0;
      for (int r = 0; r < sample.rows(); ++r) {
        if (where >= 0 && sample(r, where) != 1) continue;
        ++total;
        positives += sample(r, column);
      }
      ASSERT_GT(positives, 0);
      ASSERT_LT(positives, total);
      EXPECT_NEAR(Sigmoid(params[offset]), positives / total, 1e-12) << "offset " << offset;
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (!is_bias[i]) {
        EXPECT_EQ(params[i], initial[i]) << "param " << i << " is no output bias";
      }
    }
    // Rates are clamped to [1e-4, 1 - 1e-4]: all-positive labels.
    const Matrix all_ones = Matrix::Ones(50, static_cast<int>(c.labels.size()));
    model->InitOutputBiases(all_ones, params.data());
    for (const auto& bias : biases) EXPECT_NEAR(Sigmoid(params[bias[0]]), 1 - 1e-4, 1e-12);
    // Off when the config says so.
    config::ModelConfig off = c.config;
    off.set_output_bias_from_prior(false);
    auto no_prior = MustCreate<double>(off, c.inputs, c.labels);
    std::vector<double> untouched = initial;
    no_prior->InitOutputBiases(sample, untouched.data());
    EXPECT_EQ(untouched, initial);
  }
}

TEST(AllModelsTest, DropoutOnlyInTraining) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(72);
    config::ModelConfig with = c.config;
    with.set_dropout(0.5);
    config::ModelConfig zero = c.config;
    zero.set_dropout(0);
    auto plain = MustCreate<double>(c.config, c.inputs, c.labels);
    auto dropped = MustCreate<double>(with, c.inputs, c.labels);
    auto rate_zero = MustCreate<double>(zero, c.inputs, c.labels);
    ASSERT_EQ(plain->num_params(), dropped->num_params());
    const std::vector<double> params = RandomParams(*plain, &rng);
    const Matrix input = RandomInput(30, plain->input_dim(), &rng);
    const Matrix labels = CaseLabels(c, 30, &rng);
    auto train = [&](Model<double>* model, std::vector<double>* grad) {
      grad->assign(params.size(), 0);
      Matrix input_grad;
      std::vector<double> losses;
      model->ForwardBackward(params.data(), input, labels, grad->data(), &input_grad, &losses);
      return losses;
    };
    std::vector<double> plain_grad, zero_grad, dropped_grad;
    const std::vector<double> plain_losses = train(plain.get(), &plain_grad);
    // Rate 0 is no dropout.
    EXPECT_EQ(train(rate_zero.get(), &zero_grad), plain_losses);
    ExpectSameUpToRounding(zero_grad, plain_grad);
    // Rate 0.5 changes training...
    EXPECT_NE(train(dropped.get(), &dropped_grad), plain_losses);
    // ...but never evaluation.
    std::vector<EvalColumn> plain_out, dropped_out;
    plain->Evaluate(params.data(), input, labels, &plain_out);
    dropped->Evaluate(params.data(), input, labels, &dropped_out);
    ASSERT_EQ(plain_out.size(), dropped_out.size());
    for (size_t t = 0; t < plain_out.size(); ++t) {
      EXPECT_EQ(plain_out[t].scores, dropped_out[t].scores) << plain_out[t].task;
    }
    // Masks follow the creation seed; SeedDropout restarts them.
    auto same_seed = MustCreate<double>(with, c.inputs, c.labels, /*seed=*/1);
    auto other_seed = MustCreate<double>(with, c.inputs, c.labels, /*seed=*/2);
    std::vector<double> g1, g2;
    dropped->SeedDropout(1);
    const std::vector<double> reseeded = train(dropped.get(), &g1);
    EXPECT_EQ(train(same_seed.get(), &g2), reseeded);
    ExpectSameUpToRounding(g1, g2);
    EXPECT_NE(train(other_seed.get(), &g2), reseeded);
  }
}

// TrainingScores: one column per loss term holding exactly the examples
// and predictions that term's loss is the mean BCE of.
TEST(AllModelsTest, TrainingScoresAreWhatEachLossTermIsTheMeanOf) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(74);
    auto model = MustCreate<double>(c.config, c.inputs, c.labels);
    const std::vector<double> params = RandomParams(*model, &rng);
    const Matrix input = RandomInput(40, model->input_dim(), &rng);
    const Matrix labels = CaseLabels(c, 40, &rng);
    std::vector<double> grad(params.size()), losses;
    Matrix input_grad;
    model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
    std::vector<EvalColumn> scores;
    model->TrainingScores(labels, &scores);
    ASSERT_EQ(scores.size(), model->loss_names().size());
    ASSERT_EQ(losses.size(), scores.size());
    for (size_t t = 0; t < scores.size(); ++t) {
      SCOPED_TRACE(model->loss_names()[t]);
      const EvalColumn& col = scores[t];
      ASSERT_EQ(col.scores.size(), col.labels.size());
      ASSERT_GT(col.scores.size(), 0u);
      double bce = 0;
      for (size_t i = 0; i < col.scores.size(); ++i) {
        const double p = col.scores[i];
        bce -= col.labels[i] > 0.5f ? std::log(p) : std::log1p(-p);
      }
      EXPECT_NEAR(bce / static_cast<double>(col.scores.size()), losses[t], 1e-5);
    }
    // A second call appends the same again.
    model->TrainingScores(labels, &scores);
    EXPECT_EQ(scores[0].scores.size() % 2, 0u);
  }
}

TEST(AllModelsTest, GradientsWithDropoutUnderAFixedMask) {
  std::mt19937_64 rng(73);
  config::ModelConfig sb = SharedBottomConfig(/*prelu=*/true);
  sb.set_dropout(0.3f);
  config::ModelConfig ple = PleConfig(kPleShapes[0]);
  ple.set_dropout(0.3f);
  config::ModelConfig naive = EsmmVariantConfig(config::EsmmConfig::NAIVE);
  naive.set_dropout(0.3f);
  for (const auto& [config, inputs, labels] :
       {std::make_tuple(sb, ModelInputs{5, 0}, kSbLabels),
        std::make_tuple(ple, ModelInputs{5, 0}, kMmoeLabels),
        std::make_tuple(naive, kTwoGroupInputs, kEsmmLabels)}) {
    SCOPED_TRACE(config.ShortDebugString());
    auto model = MustCreate<double>(config, inputs, labels);
    const Matrix input = RandomInput(10, model->input_dim(), &rng);
    const Matrix label_matrix = labels == kEsmmLabels
                                    ? EsmmLabels(10, &rng)
                                    : RandomLabels(10, static_cast<int>(labels.size()), &rng);
    CheckGradients(model.get(), RandomParams(*model, &rng), input, label_matrix);
  }
}

TEST(AllModelsTest, InitParamsIsSeeded) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    auto model = MustCreate<float>(c.config, c.inputs, c.labels);
    std::vector<float> a(model->num_params()), b(a.size()), d(a.size());
    model->InitParams(7, a.data());
    model->InitParams(7, b.data());
    model->InitParams(8, d.data());
    EXPECT_EQ(a, b);
    EXPECT_NE(a, d);
  }
}

TEST(AllModelsTest, EmptyBatchGivesZeroLossAndGradient) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    auto model = MustCreate<double>(c.config, c.inputs, c.labels);
    EXPECT_EQ(model->input_dim(), InputDim(c.inputs, model->embedding_groups()));
    std::mt19937_64 rng(9);
    const std::vector<double> params = RandomParams(*model, &rng);
    std::vector<double> grad(params.size(), std::nan(""));
    const Matrix input(0, model->input_dim());
    const Matrix label_matrix(0, static_cast<int>(c.labels.size()));
    Matrix input_grad;
    std::vector<double> losses;
    model->ForwardBackward(params.data(), input, label_matrix, grad.data(), &input_grad, &losses);
    EXPECT_EQ(losses.size(), model->loss_names().size());
    for (double l : losses) EXPECT_EQ(l, 0.0);
    for (double g : grad) EXPECT_EQ(g, 0.0);
    EXPECT_EQ(input_grad.rows(), 0);
    std::vector<EvalColumn> out;
    model->Evaluate(params.data(), input, label_matrix, &out);
    EXPECT_EQ(out.size(), model->eval_task_names().size());
  }
}

TEST(AllModelsTest, NullInputGradSkipsOnlyTheInputGradient) {
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(74);
    auto model = MustCreate<double>(c.config, c.inputs, c.labels);
    const std::vector<double> params = RandomParams(*model, &rng);
    const Matrix input = RandomInput(7, model->input_dim(), &rng);
    const Matrix labels = CaseLabels(c, 7, &rng);
    std::vector<double> a(params.size()), b(params.size());
    Matrix input_grad;
    std::vector<double> la, lb;
    model->ForwardBackward(params.data(), input, labels, a.data(), &input_grad, &la);
    model->ForwardBackward(params.data(), input, labels, b.data(), nullptr, &lb);
    EXPECT_EQ(la, lb);
    ExpectSameUpToRounding(a, b);
  }
}

// ---------------------------------------------------------------------------
// CreateModel validation
// ---------------------------------------------------------------------------

void ExpectInvalid(const config::ModelConfig& config, const std::vector<std::string>& labels,
                   const std::string& mention, int input_dim = 5) {
  auto model = CreateModel<float>(config, ModelInputs{input_dim, 0}, labels, 1);
  ASSERT_FALSE(model.ok()) << "expected an error mentioning " << mention;
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find(mention), std::string::npos) << model.status();
}

TEST(CreateModelTest, RejectsBadConfigs) {
  ExpectInvalid(config::ModelConfig(), kEsmmLabels, "model.kind: must be set (model.esmm, mmoe");
  ExpectInvalid(EsmmConfig(), kEsmmLabels, "input", /*input_dim=*/0);

  config::ModelConfig esmm = EsmmConfig();
  esmm.mutable_esmm()->set_click_label("clicks");
  ExpectInvalid(esmm, kEsmmLabels, "model.esmm.click_label");
  esmm = EsmmConfig();
  esmm.mutable_esmm()->set_conversion_label("buy");
  ExpectInvalid(esmm, kEsmmLabels, "model.esmm.conversion_label");
  esmm = EsmmConfig();
  esmm.mutable_esmm()->set_conversion_label("click");
  ExpectInvalid(esmm, kEsmmLabels, "must differ");
  esmm = EsmmConfig();
  esmm.mutable_esmm()->set_tower_hidden(1, 0);
  ExpectInvalid(esmm, kEsmmLabels, "model.esmm.tower_hidden[1]");

  config::ModelConfig mmoe = MmoeConfig();
  mmoe.mutable_mmoe()->set_num_experts(0);
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.num_experts: must be > 0");
  mmoe.mutable_mmoe()->set_num_experts(1 << 20);
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.num_experts");
  mmoe = MmoeConfig();
  mmoe.mutable_mmoe()->clear_expert_hidden();
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.expert_hidden");
  mmoe = MmoeConfig();
  mmoe.mutable_mmoe()->set_expert_hidden(0, -3);
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.expert_hidden[0]");
  mmoe = MmoeConfig();
  mmoe.mutable_mmoe()->set_tower_hidden(0, 1 << 30);
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.tower_hidden[0]");
  ExpectInvalid(MmoeConfig(), {}, "data.labels");
  ExpectInvalid(MmoeConfig(), {"a", "a"}, "distinct");
}

TEST(CreateModelTest, RejectsBadConfigsOfTheNewKinds) {
  // Hidden-layer options, common to every kind.
  config::ModelConfig dropout = SharedBottomConfig();
  dropout.set_dropout(1.0f);
  ExpectInvalid(dropout, kSbLabels, "model.dropout: must be in [0, 1)");
  dropout = PleConfig(kPleShapes[0]);
  dropout.set_dropout(-0.5f);
  ExpectInvalid(dropout, kMmoeLabels, "model.dropout");

  config::ModelConfig sb = SharedBottomConfig();
  sb.mutable_shared_bottom()->clear_bottom_hidden();
  ExpectInvalid(sb, kSbLabels, "model.shared_bottom.bottom_hidden");
  sb = SharedBottomConfig();
  sb.mutable_shared_bottom()->set_bottom_hidden(1, 0);
  ExpectInvalid(sb, kSbLabels, "model.shared_bottom.bottom_hidden[1]");
  sb = SharedBottomConfig();
  sb.mutable_shared_bottom()->set_tower_hidden(0, -1);
  ExpectInvalid(sb, kSbLabels, "model.shared_bottom.tower_hidden[0]");
  ExpectInvalid(SharedBottomConfig(), {}, "data.labels");
  ExpectInvalid(SharedBottomConfig(), {"x", "x"}, "distinct");

  config::ModelConfig ple = PleConfig(kPleShapes[0]);
  ple.mutable_ple()->set_num_levels(0);
  ExpectInvalid(ple, kMmoeLabels, "model.ple.num_levels: must be > 0");
  ple.mutable_ple()->set_num_levels(1000);
  ExpectInvalid(ple, kMmoeLabels, "model.ple.num_levels");
  ple = PleConfig(kPleShapes[0]);
  ple.mutable_ple()->set_task_experts(-1);
  ExpectInvalid(ple, kMmoeLabels, "model.ple.task_experts");
  ple = PleConfig(kPleShapes[0]);
  ple.mutable_ple()->set_shared_experts(5000);
  ExpectInvalid(ple, kMmoeLabels, "model.ple.shared_experts");
  ple = PleConfig({2, 0, 0});
  ExpectInvalid(ple, kMmoeLabels, "model.ple: task_experts + shared_experts must be > 0");
  ple = PleConfig(kPleShapes[0]);
  ple.mutable_ple()->clear_expert_hidden();
  ExpectInvalid(ple, kMmoeLabels, "model.ple.expert_hidden");
  ple = PleConfig(kPleShapes[0]);
  ple.mutable_ple()->set_tower_hidden(0, 0);
  ExpectInvalid(ple, kMmoeLabels, "model.ple.tower_hidden[0]");
  ExpectInvalid(PleConfig(kPleShapes[0]), {}, "data.labels");

  config::ModelConfig st = SingleTaskConfig(true);
  st.mutable_single_task()->set_label("buy");
  ExpectInvalid(st, kEsmmLabels, "model.single_task.label: \"buy\" is not a data label");
  st = SingleTaskConfig(true);
  st.mutable_single_task()->clear_label();
  ExpectInvalid(st, kEsmmLabels, "model.single_task.label");
  st = SingleTaskConfig(true);
  st.mutable_single_task()->set_only_where("clicked");
  ExpectInvalid(st, kEsmmLabels, "model.single_task.only_where");
  st = SingleTaskConfig(true);
  st.mutable_single_task()->set_only_where("conversion");
  ExpectInvalid(st, kEsmmLabels, "must differ");
  st = SingleTaskConfig(false);
  st.mutable_single_task()->set_hidden(1, 1 << 20);
  ExpectInvalid(st, kEsmmLabels, "model.single_task.hidden[1]");

  // Input widths.
  for (const ModelInputs& bad : {ModelInputs{-1, 3}, ModelInputs{3, -1}, ModelInputs{0, 0}}) {
    auto model = CreateModel<float>(SharedBottomConfig(), bad, kSbLabels, 1);
    ASSERT_FALSE(model.ok());
    EXPECT_NE(model.status().message().find("width"), std::string::npos) << model.status();
  }
}

TEST(CreateModelTest, EmptyTowerHiddenIsALogisticRegression) {
  config::ModelConfig config;
  config.mutable_esmm();
  auto model = CreateModel<double>(config, ModelInputs{4, 0}, {"click", "conversion"}, 1);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->num_params(), 2 * (4 + 1));
}

// ---------------------------------------------------------------------------
// Batch norm (model.batch_norm)
// ---------------------------------------------------------------------------

config::ModelConfig WithBatchNorm(config::ModelConfig config) {
  config.set_batch_norm(true);
  return config;
}

TEST(BatchNormModelsTest, EveryHiddenUnitAddsTwoParametersAndTwoStateValues) {
  // Hidden units: MMOE 3 experts x (5 + 3) + 2 towers x 4; ESMM 2 towers x
  // (6 + 4); Shared-Bottom (6 + 4) + 3 towers x 3; PLE (2, 2, 1): 2 levels x 5
  // experts x (4 + 3) + 2 towers x 3; single-task 2 layers of kStHidden.
  int st_units = 0;
  for (int w : kStHidden) st_units += w;
  const std::vector<std::pair<std::string, int64_t>> units = {{"esmm", 20},
                                                              {"esmm_no_sharing", 20},
                                                              {"esmm_naive", 20},
                                                              {"mmoe", 32},
                                                              {"shared_bottom", 19},
                                                              {"ple", 76},
                                                              {"single_task", st_units},
                                                              {"single_task_only_where", st_units}};
  const std::vector<Case> cases = AllCases();
  ASSERT_EQ(cases.size(), units.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    ASSERT_EQ(units[i].first, c.name);
    auto plain = MustCreate<double>(c.config, c.inputs, c.labels);
    auto normed = MustCreate<double>(WithBatchNorm(c.config), c.inputs, c.labels);
    EXPECT_EQ(normed->num_params(), plain->num_params() + 2 * units[i].second);
    EXPECT_TRUE(plain->State().empty());
    EXPECT_TRUE(plain->SetState({}).ok());
    EXPECT_FALSE(plain->SetState({1.0}).ok());
    const std::vector<double> state = normed->State();
    ASSERT_EQ(static_cast<int64_t>(state.size()), 2 * units[i].second);
    // Initially every running mean is 0 and every running variance 1 (the
    // means and variances of each batch norm alternate in blocks).
    EXPECT_EQ(std::count(state.begin(), state.end(), 0.0), units[i].second);
    EXPECT_EQ(std::count(state.begin(), state.end(), 1.0), units[i].second);
    // InitParams draws nothing for gamma and beta: the random W blocks of
    // both layouts hold the same values in the same order.
    std::vector<double> a(plain->num_params()), b(normed->num_params());
    plain->InitParams(3, a.data());
    normed->InitParams(3, b.data());
    std::vector<double> wa, wb;
    for (double v : a)
      if (v != 0.0 && v != 1.0) wa.push_back(v);
    for (double v : b)
      if (v != 0.0 && v != 1.0) wb.push_back(v);
    EXPECT_EQ(wa, wb);
    EXPECT_EQ(std::count(b.begin(), b.end(), 1.0) - std::count(a.begin(), a.end(), 1.0),
              units[i].second);
  }
}

TEST(BatchNormModelsTest, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(81);
  for (const Case& c : AllCases()) {
    for (bool prelu : {false, true}) {
      SCOPED_TRACE(c.name + (prelu ? " prelu" : " relu"));
      config::ModelConfig config = WithBatchNorm(c.config);
      if (prelu) config.set_activation(config::ModelConfig::PRELU);
      auto model = MustCreate<double>(config, c.inputs, c.labels);
      const Matrix input = RandomInput(9, model->input_dim(), &rng);
      const Matrix labels = CaseLabels(c, 9, &rng);
      CheckGradients(model.get(), RandomParams(*model, &rng), input, labels);
    }
  }
  // With dropout under a fixed mask too.
  config::ModelConfig ple = WithBatchNorm(PleConfig(kPleShapes[0], /*prelu=*/true));
  ple.set_dropout(0.3f);
  auto model = MustCreate<double>(ple, ModelInputs{5, 0}, kMmoeLabels);
  CheckGradients(model.get(), RandomParams(*model, &rng), RandomInput(9, 5, &rng),
                 RandomLabels(9, 2, &rng));
}

// Every Evaluate score, for models whose naive pass takes the running state.
struct NaiveScores {
  std::string name;
  config::ModelConfig config;
  std::vector<std::string> labels;
  bool esmm_labels;
  // Per-row task scores in Evaluate's column order, all rows evaluated.
  std::function<std::vector<double>(const std::vector<double>& params,
                                    const std::vector<double>& row, NaiveNorm* norm)>
      scores;
};

std::vector<NaiveScores> NaiveScoreCases() {
  std::vector<NaiveScores> cases;
  cases.push_back(
      {"mmoe", WithBatchNorm(MmoeConfig()), kMmoeLabels, false,
       [](const std::vector<double>& params, const std::vector<double>& row, NaiveNorm* norm) {
         std::vector<double> out =
             NaiveMmoe(params, kMmoeExperts, kMmoeExpertHidden, kMmoeTowerHidden, 2, row, norm);
         for (double& v : out) v = Sigmoid(v);
         return out;
       }});
  cases.push_back(
      {"ple", WithBatchNorm(PleConfig(kPleShapes[0], /*prelu=*/true)), kMmoeLabels, false,
       [](const std::vector<double>& params, const std::vector<double>& row, NaiveNorm* norm) {
         std::vector<double> out = NaivePle(params, kPleShapes[0], 2, true, row, norm);
         for (double& v : out) v = Sigmoid(v);
         return out;
       }});
  // ESMM's ctr and ctcvr columns (its cvr column holds clicked rows only).
  cases.push_back(
      {"esmm", WithBatchNorm(EsmmConfig()), kEsmmLabels, true,
       [](const std::vector<double>& params, const std::vector<double>& row, NaiveNorm* norm) {
         const auto [a, c] = NaiveEsmm(params, kEsmmHidden, row, norm);
         return std::vector<double>{Sigmoid(a), Sigmoid(a) * Sigmoid(c)};
       }});
  return cases;
}

// The Evaluate scores of every row (ESMM: its ctr and ctcvr columns).
std::vector<std::vector<float>> EvaluateScores(Model<double>* model,
                                               const std::vector<double>& params,
                                               const Matrix& input, const Matrix& labels) {
  std::vector<EvalColumn> out;
  model->Evaluate(params.data(), input, labels, &out);
  std::vector<std::vector<float>> scores;
  for (const EvalColumn& column : out) {
    if (column.task == "cvr") continue;
    scores.push_back(column.scores);
  }
  return scores;
}

void ExpectNaiveScores(const NaiveScores& c, Model<double>* model,
                       const std::vector<double>& params, const Matrix& input,
                       const Matrix& labels) {
  const std::vector<double> state = model->State();
  const std::vector<std::vector<float>> scores = EvaluateScores(model, params, input, labels);
  for (int r = 0; r < input.rows(); ++r) {
    NaiveNorm norm{&state, 0};
    const std::vector<double> expected = c.scores(params, Row(input, r), &norm);
    EXPECT_EQ(norm.at, static_cast<int64_t>(state.size()));
    ASSERT_EQ(expected.size(), scores.size());
    for (size_t k = 0; k < expected.size(); ++k) {
      ASSERT_EQ(scores[k].size(), static_cast<size_t>(input.rows()));
      EXPECT_NEAR(scores[k][r], expected[k], 1e-6) << "row " << r << " column " << k;
    }
  }
}

TEST(BatchNormModelsTest, EvaluateUsesTheRunningStatisticsTrainingUpdates) {
  for (const NaiveScores& c : NaiveScoreCases()) {
    SCOPED_TRACE(c.name);
    std::mt19937_64 rng(82);
    auto model = MustCreate<double>(c.config, ModelInputs{6, 0}, c.labels);
    const std::vector<double> params = RandomParams(*model, &rng);
    auto labels_of = [&](int rows) {
      return c.esmm_labels ? EsmmLabels(rows, &rng)
                           : RandomLabels(rows, static_cast<int>(c.labels.size()), &rng);
    };
    const Matrix eval_input = RandomInput(12, 6, &rng);
    const Matrix eval_labels = labels_of(12);
    // Fresh running statistics (means 0, variances 1).
    const std::vector<double> initial = model->State();
    ExpectNaiveScores(c, model.get(), params, eval_input, eval_labels);
    const std::vector<std::vector<float>> before =
        EvaluateScores(model.get(), params, eval_input, eval_labels);
    EXPECT_EQ(model->State(), initial);  // evaluation updates nothing

    // Training steps move the running statistics; the first batch norm (the
    // first layer of the first expert or tower, reading the input row) by
    // exactly the momentum formula.
    std::vector<double> grad(params.size());
    Matrix input_grad;
    std::vector<double> losses;
    const int h = c.name == "esmm"  ? kEsmmHidden[0]
                  : c.name == "ple" ? kPleExpertHidden[0]
                                    : kMmoeExpertHidden[0];
    for (int step = 0; step < 3; ++step) {
      const Matrix input = RandomInput(20, 6, &rng) * 2.0 + Matrix::Constant(20, 6, 0.5);
      const std::vector<double> old_state = model->State();
      model->ForwardBackward(params.data(), input, labels_of(20), grad.data(), &input_grad,
                             &losses);
      const std::vector<double> state = model->State();
      const Eigen::Map<const Matrix> w(params.data(), 6, h);
      const Eigen::Map<const Eigen::RowVectorXd> b(params.data() + 6 * h, h);
      const Matrix z = (input * w).rowwise() + b;
      for (int j = 0; j < h; ++j) {
        const double mean = z.col(j).mean();
        const double var = (z.col(j).array() - mean).square().sum() / (z.rows() - 1);
        EXPECT_NEAR(state[j], 0.9 * old_state[j] + 0.1 * mean, 1e-12);
        EXPECT_NEAR(state[h + j], 0.9 * old_state[h + j] + 0.1 * var, 1e-12);
      }
    }
    const std::vector<double> trained = model->State();
    EXPECT_NE(trained, initial);
    const std::vector<std::vector<float>> after =
        EvaluateScores(model.get(), params, eval_input, eval_labels);
    EXPECT_NE(after, before);
    ExpectNaiveScores(c, model.get(), params, eval_input, eval_labels);
    EXPECT_EQ(model->State(), trained);

    // Another model restored from the state evaluates identically.
    auto restored = MustCreate<double>(c.config, ModelInputs{6, 0}, c.labels);
    ASSERT_TRUE(restored->SetState(trained).ok());
    EXPECT_EQ(restored->State(), trained);
    EXPECT_EQ(EvaluateScores(restored.get(), params, eval_input, eval_labels), after);
    // Bad states are refused.
    std::vector<double> bad = trained;
    bad.pop_back();
    Status status = restored->SetState(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("model state has " + std::to_string(bad.size())),
              std::string::npos)
        << status;
    bad = trained;
    bad.push_back(1.0);
    EXPECT_EQ(restored->SetState(bad).code(), StatusCode::kInvalidArgument);
    bad = trained;
    bad[h] = -1.0;  // the first running variance
    status = restored->SetState(bad);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("state[" + std::to_string(h) + "]"), std::string::npos)
        << status;
  }
}

TEST(BatchNormModelsTest, BatchOfOneRowIsFinite) {
  for (const Case& c : AllCases()) {
    for (bool prelu : {false, true}) {
      SCOPED_TRACE(c.name + (prelu ? " prelu" : " relu"));
      std::mt19937_64 rng(83);
      config::ModelConfig config = WithBatchNorm(c.config);
      if (prelu) config.set_activation(config::ModelConfig::PRELU);
      auto model = MustCreate<double>(config, c.inputs, c.labels);
      const std::vector<double> params = RandomParams(*model, &rng);
      // Row 0 of CaseLabels is a positive (clicked) row.
      const Matrix input = RandomInput(1, model->input_dim(), &rng) * 100.0;
      const Matrix labels = CaseLabels(c, 2, &rng).topRows(1);
      std::vector<double> grad(params.size(), std::nan(""));
      Matrix input_grad;
      std::vector<double> losses;
      model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
      for (double l : losses) EXPECT_TRUE(std::isfinite(l)) << l;
      for (double g : grad) EXPECT_TRUE(std::isfinite(g)) << g;
      EXPECT_TRUE(input_grad.allFinite());
      // Every hidden unit normalised to 0: the input matters only through
      // the gates (MMOE, PLE).
      if (c.name != "mmoe" && c.name != "ple") {
        EXPECT_EQ(input_grad.cwiseAbs().maxCoeff(), 0.0);
      }
      for (double v : model->State()) EXPECT_TRUE(std::isfinite(v)) << v;
      std::vector<EvalColumn> out;
      model->Evaluate(params.data(), input, labels, &out);
      for (const EvalColumn& column : out) {
        for (float s : column.scores) EXPECT_TRUE(std::isfinite(s)) << column.task;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Training: float, plain SGD, learnable synthetic problem.
// ---------------------------------------------------------------------------

using MatrixF = RowMatrix<float>;

// click = [x.u + noise > 0]; conversion = click AND [x.v > 0.3]. Label
// columns follow `names` ("click", "conversion").
void SyntheticBatch(int rows, int dim, std::mt19937_64* rng, MatrixF* input, MatrixF* labels) {
  std::normal_distribution<float> n(0, 1);
  input->resize(rows, dim);
  labels->resize(rows, 2);
  for (int r = 0; r < rows; ++r) {
    float u = 0, v = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = n(*rng);
      (*input)(r, d) = x;
      u += (d % 2 == 0 ? 1.0f : -0.5f) * x;
      v += (d < dim / 2 ? 0.8f : 0.2f) * x;
    }
    const bool click = u + 0.3f * n(*rng) > 0;
    (*labels)(r, 0) = click;
    (*labels)(r, 1) = click && v > 0.3f;
  }
}

float TrainAndReportLossRatio(const config::ModelConfig& config) {
  const int dim = 8;
  auto model = MustCreate<float>(config, dim, {"click", "conversion"});
  std::vector<float> params(model->num_params()), grad(params.size());
  model->InitParams(1, params.data());
  std::mt19937_64 rng(123);
  MatrixF eval_input, eval_labels, input, labels, input_grad;
  SyntheticBatch(512, dim, &rng, &eval_input, &eval_labels);
  std::vector<float> losses;
  auto eval_loss = [&] {
    std::vector<float> g(params.size());
    MatrixF ig;
    model->ForwardBackward(params.data(), eval_input, eval_labels, g.data(), &ig, &losses);
    float total = 0;
    for (float l : losses) total += l;
    return total;
  };
  const float before = eval_loss();
  for (int step = 0; step < 300; ++step) {
    SyntheticBatch(64, dim, &rng, &input, &labels);
    model->ForwardBackward(params.data(), input, labels, grad.data(), &input_grad, &losses);
    for (size_t i = 0; i < params.size(); ++i) params[i] -= 0.2f * grad[i];
  }
  const float after = eval_loss();
  EXPECT_TRUE(std::isfinite(after));
  return after / before;
}

TEST(TrainingTest, EsmmSgdLowersLoss) {
  config::ModelConfig config;
  config.mutable_esmm()->add_tower_hidden(16);
  config.mutable_esmm()->add_tower_hidden(8);
  EXPECT_LT(TrainAndReportLossRatio(config), 0.4f);
}

TEST(TrainingTest, MmoeSgdLowersLoss) {
  config::ModelConfig config;
  config.mutable_mmoe()->set_num_experts(4);
  config.mutable_mmoe()->add_expert_hidden(16);
  config.mutable_mmoe()->add_expert_hidden(8);
  config.mutable_mmoe()->add_tower_hidden(8);
  // Labels ("click", "conversion") are the MMOE's two tasks here.
  EXPECT_LT(TrainAndReportLossRatio(config), 0.4f);
}

TEST(TrainingTest, SharedBottomSgdLowersLoss) {
  config::ModelConfig config;
  config.mutable_shared_bottom()->add_bottom_hidden(16);
  config.mutable_shared_bottom()->add_tower_hidden(8);
  EXPECT_LT(TrainAndReportLossRatio(config), 0.4f);
}

TEST(TrainingTest, MmoeWithBatchNormSgdLowersLoss) {
  config::ModelConfig config;
  config.mutable_mmoe()->set_num_experts(4);
  config.mutable_mmoe()->add_expert_hidden(16);
  config.mutable_mmoe()->add_expert_hidden(8);
  config.mutable_mmoe()->add_tower_hidden(8);
  config.set_batch_norm(true);
  EXPECT_LT(TrainAndReportLossRatio(config), 0.4f);
}

TEST(TrainingTest, PleWithPreluAndDropoutSgdLowersLoss) {
  config::ModelConfig config;
  config.mutable_ple()->set_num_levels(2);
  config.mutable_ple()->set_task_experts(2);
  config.mutable_ple()->set_shared_experts(2);
  config.mutable_ple()->add_expert_hidden(16);
  config.mutable_ple()->add_tower_hidden(8);
  config.set_activation(config::ModelConfig::PRELU);
  config.set_dropout(0.1f);
  EXPECT_LT(TrainAndReportLossRatio(config), 0.4f);
}

}  // namespace
}  // namespace mtps
