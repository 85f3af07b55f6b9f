// Tests of the oneDNN matrix products (worker/nn/matmul.h): every transpose
// and accumulate combination against Eigen, in fp32 (to float rounding) and
// bf16 (to bf16 rounding), the same bits twice, empty and degenerate shapes,
// a NaN kept, and a Linear layer on the engine against the same layer on Eigen.
#include "worker/nn/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "worker/nn/eigen.h"
#include "worker/nn/layers.h"

namespace mtps {
namespace {

using Matrix = RowMatrix<float>;

Matrix Random(int64_t rows, int64_t cols, std::mt19937_64* rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  Matrix m(rows, cols);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = u(*rng);
  return m;
}

// Largest |a - b| over the entries, relative to the largest |b|.
double RelativeError(const Matrix& a, const Matrix& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-30f, b.cwiseAbs().maxCoeff());
}

void CheckAgainstEigen(ComputePrecision precision, double tolerance, int64_t m = 37, int64_t n = 29,
                       int64_t k = 53) {  // odd sizes: no kernel fits exactly
  MatmulEngine engine(precision, 1);
  std::mt19937_64 rng(7);
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      for (bool accumulate : {false, true}) {
        const Matrix a = trans_a ? Random(k, m, &rng) : Random(m, k, &rng);
        const Matrix b = trans_b ? Random(n, k, &rng) : Random(k, n, &rng);
        const Matrix start = Random(m, n, &rng);
        Matrix want = start;
        const Matrix op_a = trans_a ? Matrix(a.transpose()) : a;
        const Matrix op_b = trans_b ? Matrix(b.transpose()) : b;
        if (accumulate) {
          want.noalias() += op_a * op_b;
        } else {
          want.noalias() = op_a * op_b;
        }
        Matrix got = start;
        engine.Multiply(trans_a, trans_b, m, n, k, a.data(), b.data(), got.data(), accumulate);
        EXPECT_LT(RelativeError(got, want), tolerance)
            << "trans_a " << trans_a << " trans_b " << trans_b << " accumulate " << accumulate;
      }
    }
  }
  EXPECT_FALSE(engine.last_implementation().empty());
}

TEST(MatmulEngineTest, Fp32AgreesWithEigenForEveryTransposeAndAccumulate) {
  CheckAgainstEigen(ComputePrecision::kFp32, 1e-5);
}

// Output layers and small gates: fewer than 8 rows or columns run on Eigen
// in fp32, to fp32 rounding in either precision.
TEST(MatmulEngineTest, ThinProductsAgreeWithEigenToFloatRounding) {
  for (ComputePrecision p : {ComputePrecision::kFp32, ComputePrecision::kBf16}) {
    if (!MatmulEngine::Supported(p)) continue;
    for (const auto& [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {256, 1, 128}, {128, 1, 256}, {37, 3, 53}, {5, 29, 53}, {3, 7, 1}}) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n));
      CheckAgainstEigen(p, 1e-5, m, n, k);
    }
    MatmulEngine engine(p, 1);
    std::vector<float> a(256 * 128, 0.5f), b(128, 2.0f), c(256);
    engine.Multiply(false, false, 256, 1, 128, a.data(), b.data(), c.data(), false);
    EXPECT_EQ(c[7], 128.0f);
    EXPECT_EQ(engine.last_implementation(), "eigen:fp32 (fewer than 8 rows or columns)");
  }
}

TEST(MatmulEngineTest, Fp32IsSupportedEverywhere) {
  EXPECT_TRUE(MatmulEngine::Supported(ComputePrecision::kFp32));
}

TEST(MatmulEngineTest, Bf16AgreesWithEigenToBf16Rounding) {
  if (!MatmulEngine::Supported(ComputePrecision::kBf16)) GTEST_SKIP() << "no bf16 on this CPU";
  // bf16 keeps 8 bits of mantissa: each product is off by ~2^-8 relative,
  // and the sum of 53 of them by far less than that of its largest term.
  CheckAgainstEigen(ComputePrecision::kBf16, 2e-2);
}

TEST(MatmulEngineTest, Bf16RoundsItsInputs) {
  if (!MatmulEngine::Supported(ComputePrecision::kBf16)) GTEST_SKIP() << "no bf16 on this CPU";
  // 1 + 2^-10 is not a bf16: bf16 products see 1, fp32 products do not
  // (8 x 8 products times the identity, the smallest oneDNN multiplies).
  std::vector<float> a(64, 0.0f), id(64, 0.0f), fp32(64), bf16(64);
  a[0] = 1.0f + 1.0f / 1024;
  for (int i = 0; i < 8; ++i) id[i * 8 + i] = 1.0f;
  MatmulEngine(ComputePrecision::kFp32, 1)
      .Multiply(false, false, 8, 8, 8, a.data(), id.data(), fp32.data(), false);
  MatmulEngine(ComputePrecision::kBf16, 1)
      .Multiply(false, false, 8, 8, 8, a.data(), id.data(), bf16.data(), false);
  EXPECT_EQ(fp32[0], a[0]);
  EXPECT_EQ(bf16[0], 1.0f);
}

// bf16 of x by its definition: round the fp32 bits to the upper 16, to
// nearest, ties to even.
float RoundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  const uint32_t lower = bits & 0xffffu;
  uint32_t upper = bits >> 16;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u) != 0)) ++upper;
  bits = upper << 16;
  std::memcpy(&x, &bits, sizeof(bits));
  return x;
}

TEST(MatmulEngineTest, Bf16RoundsEveryInputToNearestEven) {
  if (!MatmulEngine::Supported(ComputePrecision::kBf16)) GTEST_SKIP() << "no bf16 on this CPU";
  // 101 values (blocks of 32 and a tail: the vector and the scalar
  // conversion), among them ties both ways and values just off a tie; in
  // the first column of a 101 x 8 matrix times the 8 x 8 identity they come
  // back as their bf16 roundings.
  std::vector<float> a;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int i = 0; i < 101; ++i) a.push_back(normal(rng));
  a[0] = 1.0f + 1.0f / 256;                         // a tie, rounds down to even (1)
  a[1] = 1.0f + 3.0f / 256;                         // a tie, rounds up to even
  a[2] = std::nextafter(a[0], 2.0f);                // just above a tie: up
  a[40] = -(1.0f + 1.0f / 256);                     // in the vector blocks
  a[41] = std::nextafter(1.0f + 3.0f / 256, 0.0f);  // just below a tie: down
  a[100] = 65504.0f;
  const int64_t m = static_cast<int64_t>(a.size());
  std::vector<float> x(static_cast<size_t>(m) * 8, 0.0f), id(64, 0.0f), c(x.size());
  for (int64_t i = 0; i < m; ++i) x[static_cast<size_t>(i) * 8] = a[static_cast<size_t>(i)];
  for (int i = 0; i < 8; ++i) id[i * 8 + i] = 1.0f;
  MatmulEngine(ComputePrecision::kBf16, 1)
      .Multiply(false, false, m, 8, 8, x.data(), id.data(), c.data(), false);
  for (int64_t i = 0; i < m; ++i) {
    EXPECT_EQ(c[static_cast<size_t>(i) * 8], RoundToBf16(a[static_cast<size_t>(i)]))
        << i << ": " << a[static_cast<size_t>(i)];
  }
  EXPECT_EQ(c[0], 1.0f);
  EXPECT_EQ(c[8], 1.0f + 4.0f / 256);
}

// The conversion itself, denormals too (products cannot show them: AMX and
// AVX512_BF16 multiply them as zero): every value of 3 blocks of 32 and a
// tail gets its bf16 rounding's bits, a block with a denormal as well.
TEST(MatmulEngineTest, ConvertToBf16RoundsDenormalsAndNansLikeAnyValue) {
  std::mt19937_64 rng(13);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> a(100);
  for (float& v : a) v = normal(rng);
  a[33] = 1e-39f;  // denormals in the second block
  a[34] = -3e-39f;
  a[35] = std::numeric_limits<float>::denorm_min();
  a[70] = 1.0f + 1.0f / 256;  // ties in the third
  a[71] = 1.0f + 3.0f / 256;
  a[97] = 5e-40f;  // and in the tail
  std::vector<uint16_t> got(a.size());
  ConvertToBf16(a.data(), static_cast<int64_t>(a.size()), got.data());
  for (size_t i = 0; i < a.size(); ++i) {
    const float want = RoundToBf16(a[i]);
    uint32_t bits;
    std::memcpy(&bits, &want, sizeof(bits));
    EXPECT_EQ(got[i], bits >> 16) << i << ": " << a[i];
  }
  EXPECT_NE(got[33], 0);  // a denormal is not read as zero
  const float nan[1] = {std::numeric_limits<float>::quiet_NaN()};
  uint16_t nan16 = 0;
  ConvertToBf16(nan, 1, &nan16);
  EXPECT_EQ(nan16 & 0x7f80, 0x7f80);
  EXPECT_NE(nan16 & 0x007f, 0);
}

TEST(MatmulEngineTest, TheSameInputsGiveTheSameBits) {
  for (ComputePrecision p : {ComputePrecision::kFp32, ComputePrecision::kBf16}) {
    if (!MatmulEngine::Supported(p)) continue;
    MatmulEngine engine(p, 1);
    std::mt19937_64 rng(3);
    const Matrix a = Random(256, 324, &rng), b = Random(324, 128, &rng);
    Matrix first(256, 128), second(256, 128);
    engine.Multiply(false, false, 256, 128, 324, a.data(), b.data(), first.data(), false);
    engine.Multiply(false, false, 256, 128, 324, a.data(), b.data(), second.data(), false);
    EXPECT_EQ(first, second);
  }
}

TEST(MatmulEngineTest, EmptyAndZeroDepthProducts) {
  MatmulEngine engine(ComputePrecision::kFp32, 1);
  float c[6] = {1, 2, 3, 4, 5, 6};
  engine.Multiply(false, false, 0, 3, 4, nullptr, nullptr, c, false);  // no rows: nothing
  EXPECT_EQ(c[0], 1);
  engine.Multiply(false, false, 2, 3, 0, nullptr, nullptr, c, true);  // k = 0, accumulate: C
  EXPECT_EQ(c[5], 6);
  engine.Multiply(false, false, 2, 3, 0, nullptr, nullptr, c, false);  // k = 0: zeros
  for (float v : c) EXPECT_EQ(v, 0);
}

TEST(MatmulEngineTest, ANanInputStaysNanInBf16) {
  if (!MatmulEngine::Supported(ComputePrecision::kBf16)) GTEST_SKIP() << "no bf16 on this CPU";
  MatmulEngine engine(ComputePrecision::kBf16, 1);
  std::vector<float> a(64, 0.0f), id(64, 0.0f), c(64);
  a[0] = std::numeric_limits<float>::quiet_NaN();
  a[9] = 1.0f;
  for (int i = 0; i < 8; ++i) id[i * 8 + i] = 1.0f;
  engine.Multiply(false, false, 8, 8, 8, a.data(), id.data(), c.data(), false);
  EXPECT_TRUE(std::isnan(c[0]));
  EXPECT_EQ(c[9], 1.0f);
}

TEST(MatmulEngineTest, ALinearLayerOnTheEngineMatchesItOnEigen) {
  const int in = 45, out = 19, rows = 33;
  auto engine = std::make_shared<MatmulEngine>(ComputePrecision::kFp32, 1);
  Linear<float> on_eigen(in, out, 0, Linear<float>::Init::kHe);
  Linear<float> on_engine(in, out, 0, Linear<float>::Init::kHe, engine);
  std::mt19937_64 rng(5);
  std::vector<float> params(static_cast<size_t>(on_eigen.num_params()));
  on_eigen.InitParams(&rng, params.data());
  for (int j = 0; j < out; ++j) params[static_cast<size_t>(on_eigen.bias_offset() + j)] = 0.1f * j;
  const Matrix x = Random(rows, in, &rng), dy = Random(rows, out, &rng);
  Matrix y1, y2;
  on_eigen.Forward(params.data(), x, &y1);
  on_engine.Forward(params.data(), x, &y2);
  EXPECT_LT(RelativeError(y2, y1), 1e-5);
  for (GradMode mode : {GradMode::kOverwrite, GradMode::kAccumulate}) {
    std::vector<float> g1(params.size()), g2(params.size());
    Matrix dx1 = Matrix::Ones(rows, in), dx2 = Matrix::Ones(rows, in);
    on_eigen.Backward(params.data(), x, dy, g1.data(), &dx1, mode);
    on_engine.Backward(params.data(), x, dy, g2.data(), &dx2, mode);
    EXPECT_LT(RelativeError(dx2, dx1), 1e-5);
    double worst = 0, largest = 0;
    for (size_t i = 0; i < g1.size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::abs(g1[i] - g2[i])));
      largest = std::max(largest, static_cast<double>(std::abs(g1[i])));
    }
    EXPECT_LT(worst, 1e-5 * largest);
  }
}

}  // namespace
}  // namespace mtps
