// Layers of the dense towers: Linear, ReLU, Sigmoid, row-wise softmax,
// binary cross-entropy on logits, and an MLP built from them.
//
// Every layer works on a whole batch at once (B rows, one example per row,
// RowMatrix<T>), with matrix products for the linear maps. Layers own no
// weights: a Linear reads its weights from the model's flat parameter array
// at a fixed offset (through Eigen::Map) and writes its gradient at the same
// offset of the flat gradient array. Templated on the scalar (float for
// training, double for gradient checks); instantiated for float and double
// in layers.cc so the Eigen kernels are compiled once.
//
// Initialisation (InitParams), all drawn from the caller's seeded
// std::mt19937_64 in layout order, so a seed fixes every parameter:
//   - Linear with Init::kHe (a layer followed by a ReLU): W ~ U(-a, a) with
//     a = sqrt(6 / in) (He uniform), b = 0.
//   - Linear with Init::kXavier (a layer followed by a sigmoid or softmax, i.e.
//     the logit layer of a tower and the gates): a = sqrt(6 / (in + out))
//     (Glorot uniform), b = 0.
#ifndef MTPS_WORKER_LAYERS_H_
#define MTPS_WORKER_LAYERS_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/model.h"

namespace mtps {

// Largest width a model config may give a layer (keeps a typo such as an extra
// digit from allocating gigabytes).
constexpr int kMaxLayerWidth = 65536;

// Checks that every entry of a repeated width field is in [1, kMaxLayerWidth];
// the error names the field and index ("model.esmm.tower_hidden[1] must be in
// [1, 65536], got 0").
Status CheckLayerWidths(const std::vector<int>& widths, const std::string& field);

// Whether a Backward overwrites its input gradient or adds to it (for inputs
// shared by several layers, e.g. the MMOE experts and gates).
enum class GradMode { kOverwrite, kAccumulate };

// Draws a double uniformly from [-a, a) with the bits of one rng() call
// (fixed formula, so a seed gives the same parameters on every platform).
double UniformSymmetric(std::mt19937_64* rng, double a);

// y = x W + b, W is in x out (row-major), b has out entries. Parameters at
// params[offset, offset + in*out) for W, then out entries for b.
// Immutable after construction; thread-safe.
template <typename T>
class Linear {
 public:
  using Matrix = RowMatrix<T>;
  enum class Init { kHe, kXavier };

  Linear(int in_dim, int out_dim, int64_t offset, Init init);

  int in_dim() const { return in_dim_; }
  int out_dim() const { return out_dim_; }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return static_cast<int64_t>(in_dim_) * out_dim_ + out_dim_; }

  // Writes this layer's block of params (see the file comment).
  void InitParams(std::mt19937_64* rng, T* params) const;

  // *y = x W + b, resized to B x out. y must not alias x.
  void Forward(const T* params, const Matrix& x, Matrix* y) const;

  // Given x (the Forward input) and dy = d loss / d y: overwrites this
  // layer's block of param_grad with d loss / d (W, b), and, if dx is not
  // null, writes (kOverwrite, resizing) or adds (kAccumulate, same shape
  // required) d loss / d x = dy W^T.
  void Backward(const T* params, const Matrix& x, const Matrix& dy, T* param_grad, Matrix* dx,
                GradMode mode = GradMode::kOverwrite) const;

 private:
  int in_dim_;
  int out_dim_;
  int64_t offset_;
  Init init_;
};

// Element-wise max(x, 0). Backward uses the output: dx = dy where y > 0
// (the subgradient at 0 is 0).
template <typename T>
struct Relu {
  static void Forward(const RowMatrix<T>& x, RowMatrix<T>* y);
  static void Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx);
};

// Stable scalar logistic function 1 / (1 + exp(-x)) (no overflow for any x).
template <typename T>
T StableSigmoid(T x);

// Element-wise 1 / (1 + exp(-x)), computed without overflow for any x.
// Backward uses the output: dx = dy * y * (1 - y).
template <typename T>
struct Sigmoid {
  static void Forward(const RowMatrix<T>& x, RowMatrix<T>* y);
  static void Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx);
};

// Row-wise softmax (the mixing weights of a gate), max-subtracted.
// Backward uses the output: dx = y * (dy - rowsum(dy * y)).
template <typename T>
struct Softmax {
  static void Forward(const RowMatrix<T>& x, RowMatrix<T>* y);
  static void Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx);
};

// A read-only column of B values, contiguous or strided (e.g. one column of a
// row-major label matrix), bound without a copy.
template <typename T>
using ConstColumnRef =
    Eigen::Ref<const Eigen::Matrix<T, Eigen::Dynamic, 1>, 0, Eigen::InnerStride<>>;

// Binary cross-entropy on logits, for one column of logits z and labels y in
// [0, 1]: l = max(z, 0) - z y + log1p(exp(-|z|)), which is -[y log s +
// (1 - y) log(1 - s)] with s = sigmoid(z) but computed from the logit, so it
// stays finite (and exact) for any |z|.
template <typename T>
struct BceWithLogits {
  // Mean of l over the B rows (0 for B = 0).
  static T Forward(const ConstColumnRef<T>& logits, const ConstColumnRef<T>& labels);
  // d mean / d z = (sigmoid(z) - y) / B, written into *dz (resized to B x 1).
  static void Backward(const ConstColumnRef<T>& logits, const ConstColumnRef<T>& labels,
                       RowMatrix<T>* dz);
};

// A stack of Linear layers with a ReLU after every hidden layer; the last
// layer is linear (kLinear, a tower ending in a logit) or also followed by a
// ReLU (kRelu, an MMOE expert). Parameters are the layers' blocks back to
// back from `offset`.
//
// Owns its activation workspaces (reused between batches, so a steady batch
// size allocates nothing). Forward keeps a pointer to its input, which must
// stay alive and unchanged until Backward. Not thread-safe.
template <typename T>
class Mlp {
 public:
  using Matrix = RowMatrix<T>;
  enum class Output { kLinear, kRelu };

  // widths: output widths of the layers in order (the last is the output
  // width); must be non-empty and positive.
  Mlp(int in_dim, const std::vector<int>& widths, Output output, int64_t offset);

  int in_dim() const { return in_dim_; }
  int out_dim() const { return layers_.back().out_dim(); }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return num_params_; }

  void InitParams(std::mt19937_64* rng, T* params) const;

  // Runs the stack on x (B x in_dim); returns the B x out_dim output, valid
  // until the next Forward.
  const Matrix& Forward(const T* params, const Matrix& x);

  // Backward of the last Forward given dy = d loss / d output: overwrites the
  // MLP's block of param_grad; writes or adds d loss / d x into *dx unless dx
  // is null.
  void Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx,
                GradMode mode = GradMode::kOverwrite);

 private:
  int in_dim_;
  Output output_;
  int64_t offset_;
  int64_t num_params_ = 0;
  std::vector<Linear<T>> layers_;
  const Matrix* input_ = nullptr;
  std::vector<Matrix> outs_;  // outs_[i]: output of layer i, after its ReLU if it has one
  Matrix grad_a_;             // gradient workspaces, ping-ponged between layers
  Matrix grad_b_;
};

}  // namespace mtps

#endif  // MTPS_WORKER_LAYERS_H_
