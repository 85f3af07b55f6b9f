// Gradient checks of the tower layers (worker/nn/layers.h) against central finite
// differences in double (Linear, activations, PReLU, BatchNorm in training and
// evaluation, Dropout with a fixed mask, MLPs with either activation, dropout
// and batch norm), batch norm's values, running statistics and state against
// a direct computation, the numerical stability of
// BCE-with-logits and its masked form, dropout's mask statistics, and the
// shared helpers (hidden options, label prior).
//
// Every check uses the scalar objective L = <R, y> for a fixed random R, so
// d L / d y = R is what each Backward receives.

#include "worker/nn/eigen.h"

#include "worker/nn/layers.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace mtps {
namespace {

using Matrix = RowMatrix<double>;
constexpr double kEps = 1e-6;

Matrix RandomMatrix(int rows, int cols, std::mt19937_64* rng, double lo = -1, double hi = 1) {
  std::uniform_real_distribution<double> u(lo, hi);
  Matrix m(rows, cols);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = u(*rng);
  return m;
}

// Random entries with |x| in [0.1, 1]: no ReLU kink within reach of kEps.
Matrix AwayFromZero(int rows, int cols, std::mt19937_64* rng) {
  Matrix m = RandomMatrix(rows, cols, rng, 0.1, 1.0);
  std::bernoulli_distribution sign(0.5);
  for (int i = 0; i < m.size(); ++i) {
    if (sign(*rng)) m.data()[i] = -m.data()[i];
  }
  return m;
}

double Dot(const Matrix& a, const Matrix& b) { return a.cwiseProduct(b).sum(); }

// Checks analytic[i] against the central difference of f w.r.t. values[i]
// (values[i] is perturbed in place and restored).
void ExpectGradient(const std::function<double()>& f, double* values, const double* analytic,
                    int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + kEps;
    const double plus = f();
    values[i] = saved - kEps;
    const double minus = f();
    values[i] = saved;
    const double numeric = (plus - minus) / (2 * kEps);
    EXPECT_NEAR(analytic[i], numeric, 1e-6 * (1 + std::abs(numeric))) << what << "[" << i << "]";
  }
}

TEST(LinearTest, GradientsMatchFiniteDifferences) {
  std::mt19937_64 rng(1);
  const int batch = 5, in = 4, out = 3;
  const int64_t offset = 7;  // the layer does not start at 0 in the flat array
  Linear<double> layer(in, out, offset, Linear<double>::Init::kHe);
  ASSERT_EQ(layer.num_params(), in * out + out);
  std::vector<double> params(offset + layer.num_params() + 5);
  for (double& p : params) p = std::uniform_real_distribution<double>(-1, 1)(rng);
  Matrix x = RandomMatrix(batch, in, &rng);
  const Matrix r = RandomMatrix(batch, out, &rng);

  auto loss = [&] {
    Matrix y;
    layer.Forward(params.data(), x, &y);
    return Dot(r, y);
  };
  std::vector<double> grad(params.size(), 12345.0);
  Matrix dx;
  layer.Backward(params.data(), x, r, grad.data(), &dx);
  // Outside its block the gradient array is untouched.
  for (int64_t i = 0; i < offset; ++i) EXPECT_EQ(grad[i], 12345.0);
  for (size_t i = offset + layer.num_params(); i < grad.size(); ++i) EXPECT_EQ(grad[i], 12345.0);
  ExpectGradient(loss, params.data() + offset, grad.data() + offset, layer.num_params(), "param");
  ASSERT_EQ(dx.rows(), batch);
  ASSERT_EQ(dx.cols(), in);
  ExpectGradient(loss, x.data(), dx.data(), x.size(), "x");

  // kAccumulate adds to what is there.
  const Matrix base = RandomMatrix(batch, in, &rng);
  Matrix acc = base;
  layer.Backward(params.data(), x, r, grad.data(), &acc, GradMode::kAccumulate);
  EXPECT_LT((acc - base - dx).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(LinearTest, ForwardIsXTimesWPlusB) {
  // Checks the documented parameter layout: W row-major in x out, then b.
  const int in = 2, out = 3;
  Linear<double> layer(in, out, 0, Linear<double>::Init::kXavier);
  const std::vector<double> params = {1, 2, 3, 4, 5, 6, 0.5, -0.5, 1.5};
  Matrix x(1, in);
  x << 10, 100;
  Matrix y;
  layer.Forward(params.data(), x, &y);
  EXPECT_DOUBLE_EQ(y(0, 0), 10 * 1 + 100 * 4 + 0.5);
  EXPECT_DOUBLE_EQ(y(0, 1), 10 * 2 + 100 * 5 - 0.5);
  EXPECT_DOUBLE_EQ(y(0, 2), 10 * 3 + 100 * 6 + 1.5);
}

TEST(LinearTest, InitIsSeededBoundedAndZeroBias) {
  const int in = 50, out = 40;
  Linear<double> he(in, out, 0, Linear<double>::Init::kHe);
  Linear<double> xavier(in, out, 0, Linear<double>::Init::kXavier);
  std::vector<double> a(he.num_params()), b(he.num_params()), c(he.num_params()),
      d(he.num_params());
  std::mt19937_64 rng_a(3), rng_b(3), rng_c(4), rng_d(3);
  he.InitParams(&rng_a, a.data());
  he.InitParams(&rng_b, b.data());
  he.InitParams(&rng_c, c.data());
  xavier.InitParams(&rng_d, d.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const double he_limit = std::sqrt(6.0 / in);
  const double xavier_limit = std::sqrt(6.0 / (in + out));
  double he_max = 0, xavier_max = 0;
  for (int i = 0; i < in * out; ++i) {
    he_max = std::max(he_max, std::abs(a[i]));
    xavier_max = std::max(xavier_max, std::abs(d[i]));
  }
  EXPECT_LE(he_max, he_limit);
  EXPECT_GT(he_max, 0.9 * he_limit);  // uses the whole range
  EXPECT_LE(xavier_max, xavier_limit);
  EXPECT_GT(xavier_max, 0.9 * xavier_limit);
  for (int j = 0; j < out; ++j) {
    EXPECT_EQ(a[in * out + j], 0.0);
    EXPECT_EQ(d[in * out + j], 0.0);
  }
}

// Gradient check of an element-wise or row-wise activation.
template <typename Layer>
void CheckActivation(Matrix x, const char* what) {
  std::mt19937_64 rng(11);
  const Matrix r = RandomMatrix(x.rows(), x.cols(), &rng);
  auto loss = [&] {
    Matrix y;
    Layer::Forward(x, &y);
    return Dot(r, y);
  };
  Matrix y, dx;
  Layer::Forward(x, &y);
  Layer::Backward(y, r, &dx);
  ASSERT_EQ(dx.rows(), x.rows());
  ASSERT_EQ(dx.cols(), x.cols());
  ExpectGradient(loss, x.data(), dx.data(), x.size(), what);
}

TEST(ActivationTest, ReluGradient) {
  std::mt19937_64 rng(5);
  Matrix x = AwayFromZero(6, 5, &rng);
  Matrix y;
  Relu<double>::Forward(x, &y);
  for (int i = 0; i < x.size(); ++i) EXPECT_EQ(y.data()[i], std::max(0.0, x.data()[i]));
  CheckActivation<Relu<double>>(x, "relu");
}

TEST(ActivationTest, SigmoidGradientAndValues) {
  std::mt19937_64 rng(6);
  Matrix x = RandomMatrix(6, 5, &rng, -4, 4);
  Matrix y;
  Sigmoid<double>::Forward(x, &y);
  for (int i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y.data()[i], 1 / (1 + std::exp(-x.data()[i])), 1e-15);
  }
  CheckActivation<Sigmoid<double>>(x, "sigmoid");
  Matrix extreme(1, 2);
  extreme << -1000, 1000;
  Sigmoid<double>::Forward(extreme, &y);
  EXPECT_EQ(y(0, 0), 0.0);
  EXPECT_EQ(y(0, 1), 1.0);
}

TEST(ActivationTest, SoftmaxGradientAndRowsSumToOne) {
  std::mt19937_64 rng(7);
  Matrix x = RandomMatrix(6, 4, &rng, -3, 3);
  Matrix y;
  Softmax<double>::Forward(x, &y);
  for (int r = 0; r < x.rows(); ++r) {
    EXPECT_NEAR(y.row(r).sum(), 1.0, 1e-12);
    const double denom = x.row(r).array().exp().sum();
    for (int c = 0; c < x.cols(); ++c) EXPECT_NEAR(y(r, c), std::exp(x(r, c)) / denom, 1e-14);
  }
  CheckActivation<Softmax<double>>(x, "softmax");
  Matrix big(1, 3);
  big << 1000, 999, -1000;  // would overflow exp without the max shift
  Softmax<double>::Forward(big, &y);
  EXPECT_NEAR(y(0, 0), 1 / (1 + std::exp(-1.0)), 1e-12);
  EXPECT_TRUE(y.allFinite());
}

TEST(BceWithLogitsTest, ValueAndGradient) {
  std::mt19937_64 rng(8);
  const int n = 9;
  Eigen::VectorXd z = Eigen::VectorXd::Random(n) * 4;
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) y(i) = i % 3 == 0 ? 0.3 : (i % 2);  // soft labels too
  double expected = 0;
  for (int i = 0; i < n; ++i) {
    const double s = 1 / (1 + std::exp(-z(i)));
    expected -= y(i) * std::log(s) + (1 - y(i)) * std::log(1 - s);
  }
  EXPECT_NEAR(BceWithLogits<double>::Forward(z, y), expected / n, 1e-12);
  Matrix dz;
  BceWithLogits<double>::Backward(z, y, &dz);
  ASSERT_EQ(dz.rows(), n);
  ASSERT_EQ(dz.cols(), 1);
  ExpectGradient([&] { return BceWithLogits<double>::Forward(z, y); }, z.data(), dz.data(), n,
                 "logit");
}

TEST(BceWithLogitsTest, FiniteForExtremeLogits) {
  Eigen::VectorXd z(4);
  z << 100, -100, 100, -100;
  Eigen::VectorXd y(4);
  y << 1, 0, 0, 1;
  // Right-sign rows cost ~e^-100; wrong-sign rows cost ~100 each.
  const double loss = BceWithLogits<double>::Forward(z, y);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, (0 + 0 + 100 + 100) / 4.0, 1e-9);
  Matrix dz;
  BceWithLogits<double>::Backward(z, y, &dz);
  EXPECT_TRUE(dz.allFinite());
  EXPECT_NEAR(dz(2, 0), 0.25, 1e-12);
  EXPECT_NEAR(dz(3, 0), -0.25, 1e-12);
  // float too: the training scalar.
  Eigen::VectorXf zf = z.cast<float>();
  Eigen::VectorXf yf = y.cast<float>();
  const float loss_f = BceWithLogits<float>::Forward(zf, yf);
  EXPECT_TRUE(std::isfinite(loss_f));
  EXPECT_NEAR(loss_f, 50.0f, 1e-3f);
}

TEST(BceWithLogitsTest, ReadsAStridedLabelColumn) {
  // A column of a row-major label matrix binds without copying or misreading.
  Matrix labels(3, 2);
  labels << 0, 1, 1, 0, 0, 1;
  Eigen::VectorXd z(3);
  z << 0.5, -0.25, 2;
  Eigen::VectorXd col1(3);
  col1 << 1, 0, 1;
  EXPECT_DOUBLE_EQ(BceWithLogits<double>::Forward(z, labels.col(1)),
                   BceWithLogits<double>::Forward(z, col1));
}

void CheckMlp(Mlp<double>::Output output, const HiddenOptions& hidden = HiddenOptions()) {
  std::mt19937_64 rng(9);
  const int batch = 7, in = 5;
  const int64_t offset = 3;
  Mlp<double> mlp(in, {6, 4, 3}, output, offset, hidden);
  // PReLU adds one slope per unit of every hidden layer, batch norm a scale
  // and a shift.
  const bool prelu = hidden.activation == Activation::kPrelu;
  const int64_t hidden_units = output == Mlp<double>::Output::kHidden ? 6 + 4 + 3 : 6 + 4;
  const int64_t slopes = prelu ? hidden_units : 0;
  const int64_t norms = hidden.batch_norm ? 2 * hidden_units : 0;
  ASSERT_EQ(mlp.num_params(), (5 * 6 + 6) + (6 * 4 + 4) + (4 * 3 + 3) + slopes + norms);
  ASSERT_EQ(mlp.out_dim(), 3);
  ASSERT_EQ(mlp.batch_norms().size(), hidden.batch_norm ? (hidden_units == 13 ? 3u : 2u) : 0u);
  EXPECT_EQ(mlp.state_size(), norms);
  std::vector<double> params(offset + mlp.num_params());
  std::mt19937_64 init_rng(2);
  mlp.InitParams(&init_rng, params.data());
  const int64_t after_linear0 = offset + 5 * 6 + 6;
  if (hidden.batch_norm) {
    // Layer 0's gammas (1) and betas (0) follow its Linear block.
    for (int j = 0; j < 6; ++j) EXPECT_EQ(params[after_linear0 + j], 1.0);
    for (int j = 0; j < 6; ++j) EXPECT_EQ(params[after_linear0 + 6 + j], 0.0);
  }
  if (prelu) {
    // The slopes of layer 0 follow its Linear block (and batch norm) and start at 0.25.
    for (int j = 0; j < 6; ++j)
      EXPECT_EQ(params[after_linear0 + (hidden.batch_norm ? 2 * 6 : 0) + j], 0.25);
  }
  // Non-zero biases (and varied slopes) so every gradient is exercised generically.
  for (double& p : params) p += std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
  Matrix x = RandomMatrix(batch, in, &rng);
  const Matrix r = RandomMatrix(batch, 3, &rng);

  // Training mode with the same masks at every evaluation: reseed first.
  std::mt19937_64 dropout_rng;
  auto loss = [&] {
    dropout_rng.seed(77);
    return Dot(r, mlp.Forward(params.data(), x, &dropout_rng));
  };
  dropout_rng.seed(77);
  const Matrix& y = mlp.Forward(params.data(), x, &dropout_rng);
  if (output == Mlp<double>::Output::kHidden && !prelu) {
    EXPECT_GE(y.minCoeff(), 0.0);
  } else {
    EXPECT_LT(y.minCoeff(), 0.0);  // a linear (or PReLU) output goes negative somewhere
  }
  if (hidden.dropout > 0 && output == Mlp<double>::Output::kHidden) {
    EXPECT_EQ((y.array() == 0).count() > 0, true);  // some units dropped
  }
  std::vector<double> grad(params.size(), 0.0);
  Matrix dx;
  mlp.Backward(params.data(), r, grad.data(), &dx);
  ExpectGradient(loss, params.data() + offset, grad.data() + offset, mlp.num_params(), "param");
  ExpectGradient(loss, x.data(), dx.data(), x.size(), "x");
}

TEST(MlpTest, LinearOutputGradients) { CheckMlp(Mlp<double>::Output::kLinear); }
TEST(MlpTest, HiddenOutputGradients) { CheckMlp(Mlp<double>::Output::kHidden); }
TEST(MlpTest, PreluGradients) {
  CheckMlp(Mlp<double>::Output::kLinear, {Activation::kPrelu, 0});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kPrelu, 0});
}
TEST(MlpTest, DropoutGradientsWithAFixedMask) {
  CheckMlp(Mlp<double>::Output::kLinear, {Activation::kRelu, 0.3});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kRelu, 0.3});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kPrelu, 0.3});
}

TEST(MlpTest, BatchNormGradients) {
  CheckMlp(Mlp<double>::Output::kLinear, {Activation::kRelu, 0, true});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kRelu, 0, true});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kPrelu, 0, true});
  CheckMlp(Mlp<double>::Output::kLinear, {Activation::kPrelu, 0.3, true});
  CheckMlp(Mlp<double>::Output::kHidden, {Activation::kRelu, 0.3, true});
}

TEST(MlpTest, DropoutOnlyInTrainingAndRateZeroIsIdentity) {
  std::mt19937_64 rng(12);
  const int in = 6;
  Mlp<double> plain(in, {8, 5}, Mlp<double>::Output::kHidden, 0);
  Mlp<double> zero(in, {8, 5}, Mlp<double>::Output::kHidden, 0, {Activation::kRelu, 0.0});
  Mlp<double> half(in, {8, 5}, Mlp<double>::Output::kHidden, 0, {Activation::kRelu, 0.5});
  ASSERT_EQ(plain.num_params(), half.num_params());  // dropout has no parameters
  std::vector<double> params(plain.num_params());
  std::mt19937_64 init(3);
  plain.InitParams(&init, params.data());
  for (double& p : params) p += std::uniform_real_distribution<double>(0, 0.2)(rng);
  const Matrix x = RandomMatrix(40, in, &rng);
  const Matrix expected = plain.Forward(params.data(), x, nullptr);
  std::mt19937_64 dropout_rng(5);
  const std::mt19937_64 before = dropout_rng;
  EXPECT_EQ(zero.Forward(params.data(), x, &dropout_rng), expected);
  EXPECT_EQ(dropout_rng, before);  // rate 0 draws nothing
  // Evaluation (no RNG) never drops.
  EXPECT_EQ(half.Forward(params.data(), x, nullptr), expected);
  const Matrix trained = half.Forward(params.data(), x, &dropout_rng);
  EXPECT_NE(trained, expected);
  EXPECT_NE(dropout_rng, before);
}

TEST(PreluTest, ForwardValuesInitAndGradients) {
  std::mt19937_64 rng(21);
  const int batch = 6, width = 4;
  const int64_t offset = 2;
  Prelu<double> layer(width, offset);
  ASSERT_EQ(layer.num_params(), width);
  std::vector<double> params(offset + width + 3, 9.0);
  layer.InitParams(params.data());
  for (int j = 0; j < width; ++j) EXPECT_EQ(params[offset + j], 0.25);
  EXPECT_EQ(params[0], 9.0);  // outside its block: untouched
  EXPECT_EQ(params[offset + width], 9.0);
  params[offset + 1] = -0.5;  // slopes may go anywhere in training
  params[offset + 2] = 1.7;
  Matrix x = AwayFromZero(batch, width, &rng);
  Matrix y;
  layer.Forward(params.data(), x, &y);
  for (int r = 0; r < batch; ++r) {
    for (int c = 0; c < width; ++c) {
      const double v = x(r, c);
      EXPECT_DOUBLE_EQ(y(r, c), v > 0 ? v : params[offset + c] * v);
    }
  }
  const Matrix dy = RandomMatrix(batch, width, &rng);
  auto loss = [&] {
    Matrix out;
    layer.Forward(params.data(), x, &out);
    return Dot(dy, out);
  };
  std::vector<double> grad(params.size(), 12345.0);
  Matrix dx;
  layer.Backward(params.data(), x, dy, grad.data(), &dx);
  EXPECT_EQ(grad[0], 12345.0);
  EXPECT_EQ(grad[offset + width], 12345.0);
  ExpectGradient(loss, params.data() + offset, grad.data() + offset, width, "slope");
  ASSERT_EQ(dx.rows(), batch);
  ASSERT_EQ(dx.cols(), width);
  ExpectGradient(loss, x.data(), dx.data(), x.size(), "x");
}

TEST(DropoutTest, RateZeroIsIdentity) {
  std::mt19937_64 rng(22);
  const Matrix x = RandomMatrix(5, 7, &rng);
  Dropout<double> dropout(0.0);
  std::mt19937_64 mask_rng(1);
  const std::mt19937_64 before = mask_rng;
  Matrix y;
  dropout.Forward(&mask_rng, x, &y);
  EXPECT_EQ(y, x);
  EXPECT_EQ(mask_rng, before);
  Matrix dx;
  dropout.Backward(x, &dx);
  EXPECT_EQ(dx, x);
}

TEST(DropoutTest, KeptUnitsScaledAndRateMatches) {
  std::mt19937_64 rng(23);
  for (double p : {0.1, 0.5, 0.8}) {
    const Matrix x = RandomMatrix(200, 500, &rng, 0.5, 1.0);  // no zeros of its own
    Dropout<double> dropout(p);
    std::mt19937_64 mask_rng(7);
    Matrix y;
    dropout.Forward(&mask_rng, x, &y);
    int64_t kept = 0;
    for (int i = 0; i < x.size(); ++i) {
      if (y.data()[i] == 0) continue;
      ++kept;
      EXPECT_NEAR(y.data()[i], x.data()[i] / (1 - p), 1e-12) << "p " << p << " entry " << i;
    }
    // 100k Bernoulli draws: the kept fraction is within ~6 sigma of 1 - p.
    EXPECT_NEAR(static_cast<double>(kept) / x.size(), 1 - p, 0.01) << "p " << p;
    // The mean is preserved in expectation.
    EXPECT_NEAR(y.mean() / x.mean(), 1.0, 0.03) << "p " << p;
    // Backward routes through the same mask.
    const Matrix dy = RandomMatrix(200, 500, &rng);
    Matrix dx;
    dropout.Backward(dy, &dx);
    for (int i = 0; i < x.size(); i += 97) {
      EXPECT_DOUBLE_EQ(dx.data()[i], y.data()[i] == 0 ? 0.0 : dy.data()[i] / (1 - p));
    }
    // A fresh Forward draws a fresh mask; the same seed the same one.
    Matrix y2;
    dropout.Forward(&mask_rng, x, &y2);
    EXPECT_NE(y2, y);
    std::mt19937_64 again(7);
    dropout.Forward(&again, x, &y2);
    EXPECT_EQ(y2, y);
  }
}

TEST(BceWithLogitsTest, MaskedMatchesDirectComputation) {
  const int n = 8;
  Eigen::VectorXd z(n), y(n), mask(n);
  z << 0.3, -1.2, 2.0, 500, -0.7, 1.1, -2.5, 0.05;
  y << 1, 0, 1, 0, 0, 1, 1, 0;
  mask << 1, 1, 0, 0, 1, 0, 1, 1;  // row 3 (a huge logit, wrong label) is masked out
  double expected = 0;
  int m = 0;
  for (int i = 0; i < n; ++i) {
    if (mask(i) == 0) continue;
    const double s = 1 / (1 + std::exp(-z(i)));
    expected -= y(i) * std::log(s) + (1 - y(i)) * std::log(1 - s);
    ++m;
  }
  Matrix dz;
  const double loss = BceWithLogits<double>::MaskedForwardBackward(z, y, mask, &dz);
  EXPECT_NEAR(loss, expected / m, 1e-12);
  ASSERT_EQ(dz.rows(), n);
  for (int i = 0; i < n; ++i) {
    const double s = 1 / (1 + std::exp(-z(i)));
    EXPECT_NEAR(dz(i, 0), mask(i) == 0 ? 0.0 : (s - y(i)) / m, 1e-12) << i;
  }
  ExpectGradient(
      [&] {
        Matrix unused;
        return BceWithLogits<double>::MaskedForwardBackward(z, y, mask, &unused);
      },
      z.data(), dz.data(), n, "logit");
  // No row in the mask: zero loss and gradient.
  const Eigen::VectorXd none = Eigen::VectorXd::Zero(n);
  EXPECT_EQ(BceWithLogits<double>::MaskedForwardBackward(z, y, none, &dz), 0.0);
  EXPECT_EQ(dz.cwiseAbs().maxCoeff(), 0.0);
}

TEST(HiddenOptionsTest, FromConfig) {
  config::ModelConfig config;
  auto options = HiddenOptionsFromConfig(config);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->activation, Activation::kRelu);
  EXPECT_EQ(options->dropout, 0.0);
  EXPECT_FALSE(options->batch_norm);
  config.set_activation(config::ModelConfig::PRELU);
  config.set_dropout(0.25f);
  config.set_batch_norm(true);
  options = HiddenOptionsFromConfig(config);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->activation, Activation::kPrelu);
  EXPECT_EQ(options->dropout, 0.25);
  EXPECT_TRUE(options->batch_norm);
  for (float bad : {1.0f, -0.1f, 7.0f, std::nanf("")}) {
    config.set_dropout(bad);
    options = HiddenOptionsFromConfig(config);
    ASSERT_FALSE(options.ok()) << bad;
    EXPECT_NE(options.status().message().find("model.dropout"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------
// BatchNorm
// ---------------------------------------------------------------------------

constexpr double kBnEps = 1e-5;
constexpr double kBnMomentum = 0.1;

// Per-column mean and variance of x computed with plain loops; `unbiased`
// divides by B - 1.
std::vector<double> ColumnMeans(const Matrix& x) {
  std::vector<double> mean(x.cols(), 0.0);
  for (int j = 0; j < x.cols(); ++j) {
    for (int i = 0; i < x.rows(); ++i) mean[j] += x(i, j);
    mean[j] /= static_cast<double>(x.rows());
  }
  return mean;
}
std::vector<double> ColumnVars(const Matrix& x, bool unbiased) {
  const std::vector<double> mean = ColumnMeans(x);
  std::vector<double> var(x.cols(), 0.0);
  for (int j = 0; j < x.cols(); ++j) {
    for (int i = 0; i < x.rows(); ++i) var[j] += (x(i, j) - mean[j]) * (x(i, j) - mean[j]);
    var[j] /= static_cast<double>(unbiased ? x.rows() - 1 : x.rows());
  }
  return var;
}

// gamma (x - mean) / sqrt(var + eps) + beta, entry by entry.
Matrix DirectBatchNorm(const Matrix& x, const std::vector<double>& mean,
                       const std::vector<double>& var, const double* gamma, const double* beta) {
  Matrix y(x.rows(), x.cols());
  for (int i = 0; i < x.rows(); ++i) {
    for (int j = 0; j < x.cols(); ++j) {
      y(i, j) = gamma[j] * (x(i, j) - mean[j]) / std::sqrt(var[j] + kBnEps) + beta[j];
    }
  }
  return y;
}

// A batch whose columns have very different means and scales.
Matrix SkewedBatch(int rows, int cols, std::mt19937_64* rng) {
  Matrix x = RandomMatrix(rows, cols, rng);
  for (int j = 0; j < cols; ++j) {
    for (int i = 0; i < rows; ++i) x(i, j) = 3.0 * j - 2.0 + (0.5 + j) * x(i, j);
  }
  return x;
}

TEST(BatchNormTest, InitAndTrainingForwardMatchDirectComputation) {
  std::mt19937_64 rng(31);
  const int batch = 6, width = 4;
  const int64_t offset = 3;
  BatchNorm<double> bn(width, offset);
  ASSERT_EQ(bn.num_params(), 2 * width);
  std::vector<double> params(offset + bn.num_params() + 2, 7.0);
  bn.InitParams(params.data());
  for (int j = 0; j < width; ++j) {
    EXPECT_EQ(params[offset + j], 1.0);
    EXPECT_EQ(params[offset + width + j], 0.0);
  }
  EXPECT_EQ(params[offset - 1], 7.0);
  EXPECT_EQ(params[offset + 2 * width], 7.0);
  for (double& p : params) p += std::uniform_real_distribution<double>(-0.5, 0.5)(rng);
  const Matrix x = SkewedBatch(batch, width, &rng);
  Matrix y;
  bn.Forward(params.data(), x, /*training=*/true, &y);
  const Matrix expected = DirectBatchNorm(x, ColumnMeans(x), ColumnVars(x, false),
                                          params.data() + offset, params.data() + offset + width);
  EXPECT_LT((y - expected).cwiseAbs().maxCoeff(), 1e-12);
  // Each output column has mean beta_j.
  const std::vector<double> out_mean = ColumnMeans(y);
  for (int j = 0; j < width; ++j) EXPECT_NEAR(out_mean[j], params[offset + width + j], 1e-12);
}

void CheckBatchNormGradients(bool training) {
  std::mt19937_64 rng(training ? 32 : 33);
  const int batch = 7, width = 3;
  const int64_t offset = 2;
  BatchNorm<double> bn(width, offset);
  std::vector<double> params(offset + bn.num_params() + 3);
  for (double& p : params) p = std::uniform_real_distribution<double>(0.3, 1.5)(rng);
  // Running statistics other than the initial ones for evaluation.
  std::vector<double> state = {0.5, -1.0, 2.0, 0.7, 1.9, 3.0};
  StateReader<double> reader(state);
  ASSERT_TRUE(bn.ReadState(&reader).ok());
  Matrix x = SkewedBatch(batch, width, &rng);
  const Matrix r = RandomMatrix(batch, width, &rng);
  auto loss = [&] {
    Matrix y;
    bn.Forward(params.data(), x, training, &y);
    return Dot(r, y);
  };
  Matrix y;
  bn.Forward(params.data(), x, training, &y);
  std::vector<double> grad(params.size(), 12345.0);
  Matrix dx;
  bn.Backward(params.data(), r, grad.data(), &dx);
  for (int64_t i = 0; i < offset; ++i) EXPECT_EQ(grad[i], 12345.0);
  for (size_t i = offset + bn.num_params(); i < grad.size(); ++i) EXPECT_EQ(grad[i], 12345.0);
  ExpectGradient(loss, params.data() + offset, grad.data() + offset, width, "gamma");
  ExpectGradient(loss, params.data() + offset + width, grad.data() + offset + width, width, "beta");
  ASSERT_EQ(dx.rows(), batch);
  ASSERT_EQ(dx.cols(), width);
  ExpectGradient(loss, x.data(), dx.data(), x.size(), "x");
  if (training) {
    // Through the batch statistics each column's input gradient sums to 0.
    for (int j = 0; j < width; ++j) EXPECT_NEAR(dx.col(j).sum(), 0.0, 1e-12);
  }
}

TEST(BatchNormTest, TrainingGradientsMatchFiniteDifferences) { CheckBatchNormGradients(true); }
TEST(BatchNormTest, EvaluationGradientsMatchFiniteDifferences) { CheckBatchNormGradients(false); }

TEST(BatchNormTest, RunningStatisticsFollowTheMomentumFormulaAndServeEvaluation) {
  std::mt19937_64 rng(34);
  const int width = 3;
  BatchNorm<double> bn(width, 0);
  std::vector<double> params(bn.num_params());
  bn.InitParams(params.data());
  for (double& p : params) p += std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
  std::vector<double> mean(width, 0.0), var(width, 1.0);  // PyTorch's initial values
  for (int j = 0; j < width; ++j) {
    EXPECT_EQ(bn.running_mean()[j], 0.0);
    EXPECT_EQ(bn.running_var()[j], 1.0);
  }
  Matrix y;
  for (int step = 0; step < 4; ++step) {
    const Matrix x = SkewedBatch(5 + step, width, &rng);
    bn.Forward(params.data(), x, /*training=*/true, &y);
    const std::vector<double> batch_mean = ColumnMeans(x);
    const std::vector<double> batch_var = ColumnVars(x, /*unbiased=*/true);
    for (int j = 0; j < width; ++j) {
      mean[j] = (1 - kBnMomentum) * mean[j] + kBnMomentum * batch_mean[j];
      var[j] = (1 - kBnMomentum) * var[j] + kBnMomentum * batch_var[j];
      EXPECT_NEAR(bn.running_mean()[j], mean[j], 1e-12) << "step " << step;
      EXPECT_NEAR(bn.running_var()[j], var[j], 1e-12) << "step " << step;
    }
  }
  // Evaluation normalises with the running statistics and leaves them alone.
  const Matrix x = SkewedBatch(6, width, &rng);
  bn.Forward(params.data(), x, /*training=*/false, &y);
  const Matrix expected = DirectBatchNorm(x, mean, var, params.data(), params.data() + width);
  EXPECT_LT((y - expected).cwiseAbs().maxCoeff(), 1e-12);
  for (int j = 0; j < width; ++j) {
    EXPECT_NEAR(bn.running_mean()[j], mean[j], 1e-12);
    EXPECT_NEAR(bn.running_var()[j], var[j], 1e-12);
  }
  // State: means then variances; a copy restored from it evaluates the same.
  std::vector<double> state;
  bn.AppendState(&state);
  ASSERT_EQ(state.size(), 2u * width);
  for (int j = 0; j < width; ++j) {
    EXPECT_NEAR(state[j], mean[j], 1e-12);
    EXPECT_NEAR(state[width + j], var[j], 1e-12);
  }
  BatchNorm<double> restored(width, 0);
  StateReader<double> reader(state);
  ASSERT_TRUE(restored.ReadState(&reader).ok());
  EXPECT_TRUE(reader.Finish().ok());
  Matrix y2;
  restored.Forward(params.data(), x, false, &y2);
  EXPECT_EQ(y2, y);
}

TEST(BatchNormTest, BatchOfOneGivesBetaAndFiniteGradients) {
  const int width = 3;
  BatchNorm<double> bn(width, 0);
  const std::vector<double> params = {1.5, -0.7, 2.0, 0.25, -1.0, 0.5};
  Matrix x(1, width);
  x << 3.0, -2.0, 1e6;
  Matrix y, dx;
  bn.Forward(params.data(), x, /*training=*/true, &y);
  for (int j = 0; j < width; ++j) EXPECT_EQ(y(0, j), params[width + j]);
  Matrix dy(1, width);
  dy << 0.3, -1.0, 2.0;
  std::vector<double> grad(params.size());
  bn.Backward(params.data(), dy, grad.data(), &dx);
  for (int j = 0; j < width; ++j) {
    EXPECT_EQ(dx(0, j), 0.0);
    EXPECT_EQ(grad[j], 0.0);               // d / d gamma: x_hat = 0
    EXPECT_EQ(grad[width + j], dy(0, j));  // d / d beta
  }
  // The running mean moves; the running variance (undefined for one row) stays.
  for (int j = 0; j < width; ++j) {
    EXPECT_NEAR(bn.running_mean()[j], kBnMomentum * x(0, j), 1e-9 * std::abs(x(0, j)));
    EXPECT_EQ(bn.running_var()[j], 1.0);
  }
  // An empty batch changes nothing.
  const Matrix empty(0, width);
  bn.Forward(params.data(), empty, true, &y);
  EXPECT_EQ(y.rows(), 0);
  bn.Backward(params.data(), Matrix(0, width), grad.data(), &dx);
  for (double g : grad) EXPECT_EQ(g, 0.0);
  EXPECT_NEAR(bn.running_mean()[0], kBnMomentum * x(0, 0), 1e-12);
}

TEST(BatchNormTest, ReadStateRejectsBadValuesAndSizes) {
  BatchNorm<double> bn(2, 0);
  const std::vector<double> good = {0.5, -0.5, 2.0, 0.0};
  for (const auto& [state, mention] : std::vector<std::pair<std::vector<double>, std::string>>{
           {{0.5, -0.5, 2.0, -1.0}, "state[3]"},
           {{0.5, std::nan(""), 2.0, 1.0}, "state[1]"},
           {{0.5, 0.5, std::numeric_limits<double>::infinity(), 1.0}, "state[2]"},
           {{0.5, 0.5, 2.0}, "3 values"}}) {
    StateReader<double> reader(state);
    const Status status = bn.ReadState(&reader);
    ASSERT_FALSE(status.ok()) << mention;
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(mention), std::string::npos) << status;
    EXPECT_EQ(bn.running_var()[1], 1.0);  // unchanged
  }
  StateReader<double> reader(good);
  ASSERT_TRUE(bn.ReadState(&reader).ok());
  EXPECT_EQ(bn.running_mean()[1], -0.5);
  EXPECT_EQ(bn.running_var()[0], 2.0);
  const std::vector<double> longer = {0, 0, 1, 1, 9};
  StateReader<double> extra(longer);
  ASSERT_TRUE(bn.ReadState(&extra).ok());
  EXPECT_FALSE(extra.Finish().ok());
}

TEST(MlpTest, BatchNormTrainingAndEvaluationUseDifferentStatistics) {
  std::mt19937_64 rng(35);
  const int in = 4;
  Mlp<double> plain(in, {5, 3}, Mlp<double>::Output::kHidden, 0);
  Mlp<double> normed(in, {5, 3}, Mlp<double>::Output::kHidden, 0, {Activation::kRelu, 0, true});
  ASSERT_EQ(normed.num_params(), plain.num_params() + 2 * (5 + 3));
  EXPECT_EQ(plain.state_size(), 0);
  ASSERT_EQ(normed.state_size(), 2 * (5 + 3));
  std::vector<double> params(normed.num_params());
  std::mt19937_64 init(3);
  normed.InitParams(&init, params.data());
  const Matrix x = SkewedBatch(20, in, &rng);
  std::mt19937_64 dropout_rng(1);
  std::vector<double> initial_state;
  normed.AppendState(&initial_state);
  const Matrix before = normed.Forward(params.data(), x, nullptr);  // running stats 0 / 1
  std::vector<double> unchanged;
  normed.AppendState(&unchanged);
  EXPECT_EQ(unchanged, initial_state);
  const Matrix trained = normed.Forward(params.data(), x, &dropout_rng);
  std::vector<double> state;
  normed.AppendState(&state);
  EXPECT_NE(state, initial_state);
  EXPECT_NE(trained, before);
  // Training mode: each hidden layer's pre-activation has batch mean 0 per
  // unit (gamma 1, beta 0), so the first layer's state is 0.1 * its
  // linear output's batch mean.
  Matrix z = x * Eigen::Map<const Matrix>(params.data(), in, 5);
  z.rowwise() += Eigen::Map<const Eigen::Matrix<double, 1, 5>>(params.data() + in * 5);
  const std::vector<double> mean = ColumnMeans(z);
  for (int j = 0; j < 5; ++j) EXPECT_NEAR(state[j], kBnMomentum * mean[j], 1e-12);
  const Matrix after = normed.Forward(params.data(), x, nullptr);
  EXPECT_NE(after, before);
}

TEST(PriorTest, LogOddsAndClamp) {
  EXPECT_NEAR(LogOddsOfRate(1, 4), std::log(0.25 / 0.75), 1e-15);
  EXPECT_NEAR(LogOddsOfRate(0, 10), std::log(1e-4 / (1 - 1e-4)), 1e-12);
  EXPECT_NEAR(LogOddsOfRate(10, 10), std::log((1 - 1e-4) / 1e-4), 1e-12);
  Matrix labels(5, 2);
  labels << 1, 1, 0, 1, 1, 0, 1, 1, 0, 0;
  std::vector<double> params(4, 3.0);
  SetBiasToPrior(labels, 0, -1, 1, params.data());
  EXPECT_NEAR(params[1], std::log(3.0 / 2.0), 1e-15);  // 3 of 5
  SetBiasToPrior(labels, 0, 1, 2, params.data());
  EXPECT_NEAR(params[2], std::log(2.0 / 1.0), 1e-15);  // 2 of the 3 rows with column 1 set
  EXPECT_EQ(params[0], 3.0);
  EXPECT_EQ(params[3], 3.0);
  const Matrix none = Matrix::Zero(3, 2);
  SetBiasToPrior(none, 0, 1, 3, params.data());  // no row qualifies: unchanged
  EXPECT_EQ(params[3], 3.0);
}

TEST(CheckLayerWidthsTest, NamesFieldAndIndex) {
  EXPECT_TRUE(CheckLayerWidths({4, 8}, "model.esmm.tower_hidden").ok());
  EXPECT_TRUE(CheckLayerWidths({}, "model.esmm.tower_hidden").ok());
  const Status bad = CheckLayerWidths({4, 0}, "model.esmm.tower_hidden");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("model.esmm.tower_hidden[1]"), std::string::npos) << bad;
  EXPECT_FALSE(CheckLayerWidths({kMaxLayerWidth + 1}, "f").ok());
}

}  // namespace
}  // namespace mtps
