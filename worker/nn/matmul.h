// MatmulEngine: the matrix products of the dense layers (Linear forward and
// backward) on oneDNN, in fp32 or in bf16 with fp32 accumulation
// (model.compute_precision).
//
// Why oneDNN: on the tower shapes (256 x 324 x 128 and the like) its fp32
// matmul ran 1.2-1.3x Eigen's product on one core, and its bf16 matmul, on a
// CPU with AMX, 5-9x (README "Benchmarks", train_bench.py). Without AMX
// oneDNN uses AVX512_BF16 or AVX-512 kernels; where it has no bf16 product
// at all, Supported(kBf16) is false and a BF16 config is refused.
//
// Multiply computes C = op(A) op(B) (+ C), row-major, op a transpose or not:
// the three products a Linear needs (x W, x^T dy, dy W^T). One primitive is
// created per shape and kept (a model has a handful of shapes), so after the
// first batch a product costs its kernel only. BF16 converts A and B to
// bf16 (round to nearest even) into buffers of its own and writes C in fp32.
// A thin product, with fewer than 8 rows or columns in C (an output layer's
// matrix-vector products, a gate over 3 experts), runs on Eigen in fp32 in
// either precision: oneDNN spent 4-9 times Eigen's time on them (matmul.cc).
// For a fixed precision, shape and thread count the results are the same
// from run to run.
//
// oneDNN runs a product on the calling thread's OpenMP team: the engine sets
// the number of threads (threads(), at least 1) for its calling thread when
// it first multiplies. Not thread-safe: one per model, used by one thread.
#ifndef MTPS_WORKER_NN_MATMUL_H_
#define MTPS_WORKER_NN_MATMUL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace mtps {

enum class ComputePrecision { kFp32, kBf16 };

// fp32 to bf16 as BF16 products see their inputs: rounded to nearest even,
// a NaN kept (quiet), denormals rounded like any value (the AVX512_BF16
// instruction that converts 32 at a time reads them as zero, so a block
// holding one is converted by the scalar loop).
void ConvertToBf16(const float* from, int64_t n, uint16_t* out);

class MatmulEngine {
 public:
  // `threads` >= 1: the OpenMP threads of the products.
  MatmulEngine(ComputePrecision precision, int threads);
  ~MatmulEngine();
  MatmulEngine(const MatmulEngine&) = delete;
  MatmulEngine& operator=(const MatmulEngine&) = delete;

  // Whether oneDNN can multiply in `precision` on this CPU (creates a 1x1x1
  // product to find out).
  static bool Supported(ComputePrecision precision);

  ComputePrecision precision() const { return precision_; }
  int threads() const { return threads_; }

  // C (m x n, row-major, leading dimension n) = op(A) op(B), plus the old C
  // when `accumulate`. op(A) is m x k: A is stored m x k (row-major) or,
  // with trans_a, k x m; op(B) is k x n: B is stored k x n or, with trans_b,
  // n x k. C must not overlap A or B.
  void Multiply(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                const float* b, float* c, bool accumulate);

  // The oneDNN implementation of the last product ("brg:avx512_core_amx_bf16"),
  // for logs and benchmarks.
  std::string last_implementation() const { return last_impl_ ? *last_impl_ : std::string(); }

 private:
  struct State;  // oneDNN objects, kept out of this header
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, bool>;

  ComputePrecision precision_;
  int threads_;
  std::unique_ptr<State> state_;            // made by the first Multiply
  const std::string* last_impl_ = nullptr;  // of a product in state_, or the thin one's
};

}  // namespace mtps

#endif  // MTPS_WORKER_NN_MATMUL_H_
