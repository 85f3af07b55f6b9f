// ESMM and MMOE (worker/esmm.h, worker/mmoe.h via CreateModel): whole-model
// gradient checks in double against central finite differences, loss terms and
// evaluation columns against a naive per-example forward pass written here
// from the documented parameter layouts, config validation, and a short float
// SGD run that must lower the loss.

#include "worker/eigen.h"

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/model.h"

namespace mtps {
namespace {

using Matrix = RowMatrix<double>;

// ---------------------------------------------------------------------------
// Naive reference forward passes (one example at a time, plain loops).
// ---------------------------------------------------------------------------

double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// Layers W (in x out, row-major) then b, from params[*offset]; advances *offset.
std::vector<double> NaiveMlp(const std::vector<double>& params, int64_t* offset,
                             std::vector<double> x, const std::vector<int>& widths,
                             bool relu_last) {
  for (size_t l = 0; l < widths.size(); ++l) {
    const int in = static_cast<int>(x.size());
    const int out = widths[l];
    const double* w = params.data() + *offset;
    const double* b = w + in * out;
    std::vector<double> y(out);
    for (int j = 0; j < out; ++j) {
      double sum = b[j];
      for (int i = 0; i < in; ++i) sum += x[i] * w[i * out + j];
      const bool relu = l + 1 < widths.size() || relu_last;
      y[j] = relu ? std::max(sum, 0.0) : sum;
    }
    *offset += in * out + out;
    x = std::move(y);
  }
  return x;
}

std::vector<double> Row(const Matrix& m, int r) {
  return std::vector<double>(m.row(r).data(), m.row(r).data() + m.cols());
}

// ESMM logits (a, c) of one row: CTR tower, then CVR tower.
std::pair<double, double> NaiveEsmm(const std::vector<double>& params,
                                    const std::vector<int>& hidden, const std::vector<double>& x) {
  std::vector<int> widths = hidden;
  widths.push_back(1);
  int64_t offset = 0;
  const double a = NaiveMlp(params, &offset, x, widths, false)[0];
  const double c = NaiveMlp(params, &offset, x, widths, false)[0];
  EXPECT_EQ(offset, static_cast<int64_t>(params.size()));
  return {a, c};
}

// MMOE task logits of one row: experts, then gates, then towers.
std::vector<double> NaiveMmoe(const std::vector<double>& params, int num_experts,
                              const std::vector<int>& expert_hidden,
                              const std::vector<int>& tower_hidden, int num_tasks,
                              const std::vector<double>& x) {
  int64_t offset = 0;
  std::vector<std::vector<double>> experts;
  for (int e = 0; e < num_experts; ++e) {
    experts.push_back(NaiveMlp(params, &offset, x, expert_hidden, true));
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
    out.push_back(NaiveMlp(params, &offset, mixed[k], widths, false)[0]);
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
std::unique_ptr<Model<T>> MustCreate(const config::ModelConfig& config, int input_dim,
                                     const std::vector<std::string>& labels) {
  auto model = CreateModel<T>(config, input_dim, labels);
  CHECK(model.ok()) << model.status();
  return std::move(model).value();
}

// Initialised parameters plus noise, so biases are non-zero too.
std::vector<double> RandomParams(const Model<double>& model, std::mt19937_64* rng) {
  std::vector<double> params(model.num_params());
  model.InitParams(42, params.data());
  std::uniform_real_distribution<double> u(-0.2, 0.2);
  for (double& p : params) p += u(*rng);
  return params;
}

double TotalLoss(Model<double>* model, const std::vector<double>& params, const Matrix& input,
                 const Matrix& labels) {
  std::vector<double> grad(params.size());
  Matrix input_grad;
  std::vector<double> losses;
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
  for (int i = 0; i < input.size(); ++i) {
    const double saved = input.data()[i];
    input.data()[i] = saved + kEps;
    const double plus = TotalLoss(model, params, input, labels);
    input.data()[i] = saved - kEps;
    const double minus = TotalLoss(model, params, input, labels);
    input.data()[i] = saved;
    const double numeric = (plus - minus) / (2 * kEps);
    EXPECT_NEAR(input_grad.data()[i], numeric, 1e-6 * (1 + std::abs(numeric))) << "input " << i;
  }
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
// CreateModel validation
// ---------------------------------------------------------------------------

void ExpectInvalid(const config::ModelConfig& config, const std::vector<std::string>& labels,
                   const std::string& mention, int input_dim = 5) {
  auto model = CreateModel<float>(config, input_dim, labels);
  ASSERT_FALSE(model.ok()) << "expected an error mentioning " << mention;
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find(mention), std::string::npos) << model.status();
}

TEST(CreateModelTest, RejectsBadConfigs) {
  ExpectInvalid(config::ModelConfig(), kEsmmLabels, "model.esmm or model.mmoe");
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
  ExpectInvalid(mmoe, kMmoeLabels, "model.mmoe.num_experts must be > 0");
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

TEST(CreateModelTest, EmptyTowerHiddenIsALogisticRegression) {
  config::ModelConfig config;
  config.mutable_esmm();
  auto model = CreateModel<double>(config, 4, {"click", "conversion"});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->num_params(), 2 * (4 + 1));
}

TEST(ModelTest, InitParamsIsSeeded) {
  for (const config::ModelConfig& config : {EsmmConfig(), MmoeConfig()}) {
    const std::vector<std::string>& labels = config.has_esmm() ? kEsmmLabels : kMmoeLabels;
    auto model = MustCreate<float>(config, 5, labels);
    std::vector<float> a(model->num_params()), b(a.size()), c(a.size());
    model->InitParams(7, a.data());
    model->InitParams(7, b.data());
    model->InitParams(8, c.data());
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
  }
}

TEST(ModelTest, EmptyBatchGivesZeroLossAndGradient) {
  for (const config::ModelConfig& config : {EsmmConfig(), MmoeConfig()}) {
    const std::vector<std::string>& labels = config.has_esmm() ? kEsmmLabels : kMmoeLabels;
    auto model = MustCreate<double>(config, 5, labels);
    std::mt19937_64 rng(9);
    const std::vector<double> params = RandomParams(*model, &rng);
    std::vector<double> grad(params.size(), std::nan(""));
    const Matrix input(0, 5);
    const Matrix label_matrix(0, static_cast<int>(labels.size()));
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

}  // namespace
}  // namespace mtps
