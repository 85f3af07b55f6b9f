// Gradient checks of the tower layers (worker/layers.h) against central finite
// differences in double, plus the numerical stability of BCE-with-logits.
//
// Every check uses the scalar objective L = <R, y> for a fixed random R, so
// d L / d y = R is what each Backward receives.

#include "worker/eigen.h"

#include "worker/layers.h"

#include <cmath>
#include <functional>
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

void CheckMlp(Mlp<double>::Output output) {
  std::mt19937_64 rng(9);
  const int batch = 7, in = 5;
  const int64_t offset = 3;
  Mlp<double> mlp(in, {6, 4, 3}, output, offset);
  ASSERT_EQ(mlp.num_params(), (5 * 6 + 6) + (6 * 4 + 4) + (4 * 3 + 3));
  ASSERT_EQ(mlp.out_dim(), 3);
  std::vector<double> params(offset + mlp.num_params());
  std::mt19937_64 init_rng(2);
  mlp.InitParams(&init_rng, params.data());
  // Non-zero biases so every layer's bias gradient is exercised generically.
  for (double& p : params) p += std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
  Matrix x = RandomMatrix(batch, in, &rng);
  const Matrix r = RandomMatrix(batch, 3, &rng);

  auto loss = [&] { return Dot(r, mlp.Forward(params.data(), x)); };
  const Matrix& y = mlp.Forward(params.data(), x);
  if (output == Mlp<double>::Output::kRelu) {
    EXPECT_GE(y.minCoeff(), 0.0);
  } else {
    EXPECT_LT(y.minCoeff(), 0.0);  // a linear output goes negative somewhere
  }
  std::vector<double> grad(params.size(), 0.0);
  Matrix dx;
  mlp.Backward(params.data(), r, grad.data(), &dx);
  ExpectGradient(loss, params.data() + offset, grad.data() + offset, mlp.num_params(), "param");
  ExpectGradient(loss, x.data(), dx.data(), x.size(), "x");
}

TEST(MlpTest, LinearOutputGradients) { CheckMlp(Mlp<double>::Output::kLinear); }
TEST(MlpTest, ReluOutputGradients) { CheckMlp(Mlp<double>::Output::kRelu); }

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
