// Layers of the dense towers (see layers.h); instantiated for float and double.

#include "worker/eigen.h"

#include "worker/layers.h"

#include <cmath>

#include <glog/logging.h>

namespace mtps {

Status CheckLayerWidths(const std::vector<int>& widths, const std::string& field) {
  for (size_t i = 0; i < widths.size(); ++i) {
    if (widths[i] < 1 || widths[i] > kMaxLayerWidth) {
      return Status::InvalidArgument(field + "[" + std::to_string(i) + "] must be in [1, " +
                                     std::to_string(kMaxLayerWidth) + "], got " +
                                     std::to_string(widths[i]));
    }
  }
  return Status::OK();
}

double UniformSymmetric(std::mt19937_64* rng, double a) {
  // 53 random bits -> [0, 1), exactly representable in a double.
  const double u = static_cast<double>((*rng)() >> 11) * 0x1.0p-53;
  return a * (2.0 * u - 1.0);
}

// ---------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------

template <typename T>
Linear<T>::Linear(int in_dim, int out_dim, int64_t offset, Init init)
    : in_dim_(in_dim), out_dim_(out_dim), offset_(offset), init_(init) {
  CHECK_GT(in_dim, 0);
  CHECK_GT(out_dim, 0);
  CHECK_GE(offset, 0);
}

template <typename T>
void Linear<T>::InitParams(std::mt19937_64* rng, T* params) const {
  const double limit =
      init_ == Init::kHe ? std::sqrt(6.0 / in_dim_) : std::sqrt(6.0 / (in_dim_ + out_dim_));
  T* w = params + offset_;
  const int64_t num_weights = static_cast<int64_t>(in_dim_) * out_dim_;
  for (int64_t i = 0; i < num_weights; ++i) w[i] = static_cast<T>(UniformSymmetric(rng, limit));
  for (int j = 0; j < out_dim_; ++j) w[num_weights + j] = T(0);
}

template <typename T>
void Linear<T>::Forward(const T* params, const Matrix& x, Matrix* y) const {
  DCHECK_EQ(x.cols(), in_dim_);
  DCHECK_NE(&x, y);
  Eigen::Map<const Matrix> w(params + offset_, in_dim_, out_dim_);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(
      params + offset_ + static_cast<int64_t>(in_dim_) * out_dim_, out_dim_);
  y->resize(x.rows(), out_dim_);
  y->noalias() = x * w;
  y->rowwise() += b;
}

template <typename T>
void Linear<T>::Backward(const T* params, const Matrix& x, const Matrix& dy, T* param_grad,
                         Matrix* dx, GradMode mode) const {
  DCHECK_EQ(x.cols(), in_dim_);
  DCHECK_EQ(dy.cols(), out_dim_);
  DCHECK_EQ(x.rows(), dy.rows());
  const int64_t num_weights = static_cast<int64_t>(in_dim_) * out_dim_;
  Eigen::Map<Matrix> dw(param_grad + offset_, in_dim_, out_dim_);
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> db(param_grad + offset_ + num_weights, out_dim_);
  dw.noalias() = x.transpose() * dy;
  db = dy.colwise().sum();
  if (dx == nullptr) return;
  DCHECK(dx != &dy);
  Eigen::Map<const Matrix> w(params + offset_, in_dim_, out_dim_);
  if (mode == GradMode::kOverwrite) {
    dx->resize(dy.rows(), in_dim_);
    dx->noalias() = dy * w.transpose();
  } else {
    DCHECK_EQ(dx->rows(), dy.rows());
    DCHECK_EQ(dx->cols(), in_dim_);
    dx->noalias() += dy * w.transpose();
  }
}

// ---------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------

template <typename T>
void Relu<T>::Forward(const RowMatrix<T>& x, RowMatrix<T>* y) {
  *y = x.cwiseMax(T(0));
}

template <typename T>
void Relu<T>::Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx) {
  DCHECK_EQ(y.rows(), dy.rows());
  DCHECK_EQ(y.cols(), dy.cols());
  dx->resize(y.rows(), y.cols());
  dx->array() = (y.array() > T(0)).select(dy.array(), T(0));
}

template <typename T>
T StableSigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}
template float StableSigmoid<float>(float x);
template double StableSigmoid<double>(double x);

template <typename T>
void Sigmoid<T>::Forward(const RowMatrix<T>& x, RowMatrix<T>* y) {
  *y = x.unaryExpr([](T v) { return StableSigmoid(v); });
}

template <typename T>
void Sigmoid<T>::Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx) {
  DCHECK_EQ(y.rows(), dy.rows());
  DCHECK_EQ(y.cols(), dy.cols());
  dx->resize(y.rows(), y.cols());
  dx->array() = dy.array() * y.array() * (T(1) - y.array());
}

template <typename T>
void Softmax<T>::Forward(const RowMatrix<T>& x, RowMatrix<T>* y) {
  DCHECK_NE(&x, y);
  y->resize(x.rows(), x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const T max = x.row(r).maxCoeff();
    y->row(r) = (x.row(r).array() - max).exp().matrix();
    y->row(r) /= y->row(r).sum();
  }
}

template <typename T>
void Softmax<T>::Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx) {
  DCHECK_EQ(y.rows(), dy.rows());
  DCHECK_EQ(y.cols(), dy.cols());
  dx->resize(y.rows(), y.cols());
  for (Eigen::Index r = 0; r < y.rows(); ++r) {
    const T dot = y.row(r).dot(dy.row(r));
    dx->row(r).array() = y.row(r).array() * (dy.row(r).array() - dot);
  }
}

template <typename T>
T BceWithLogits<T>::Forward(const ConstColumnRef<T>& logits, const ConstColumnRef<T>& labels) {
  DCHECK_EQ(logits.rows(), labels.rows());
  if (logits.rows() == 0) return T(0);
  const auto z = logits.array();
  const T sum = (z.max(T(0)) - z * labels.array() + (-z.abs()).exp().log1p()).sum();
  return sum / static_cast<T>(logits.rows());
}

template <typename T>
void BceWithLogits<T>::Backward(const ConstColumnRef<T>& logits, const ConstColumnRef<T>& labels,
                                RowMatrix<T>* dz) {
  DCHECK_EQ(logits.rows(), labels.rows());
  const Eigen::Index n = logits.rows();
  dz->resize(n, 1);
  if (n == 0) return;
  const T inv_n = T(1) / static_cast<T>(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    (*dz)(i, 0) = (StableSigmoid(logits(i)) - labels(i)) * inv_n;
  }
}

// ---------------------------------------------------------------------------
// Mlp
// ---------------------------------------------------------------------------

template <typename T>
Mlp<T>::Mlp(int in_dim, const std::vector<int>& widths, Output output, int64_t offset)
    : in_dim_(in_dim), output_(output), offset_(offset) {
  CHECK(!widths.empty());
  int in = in_dim;
  int64_t at = offset;
  for (size_t i = 0; i < widths.size(); ++i) {
    const bool last = i + 1 == widths.size();
    const auto init =
        (last && output == Output::kLinear) ? Linear<T>::Init::kXavier : Linear<T>::Init::kHe;
    layers_.emplace_back(in, widths[i], at, init);
    at += layers_.back().num_params();
    in = widths[i];
  }
  num_params_ = at - offset;
  outs_.resize(layers_.size());
}

template <typename T>
void Mlp<T>::InitParams(std::mt19937_64* rng, T* params) const {
  for (const Linear<T>& layer : layers_) layer.InitParams(rng, params);
}

template <typename T>
const typename Mlp<T>::Matrix& Mlp<T>::Forward(const T* params, const Matrix& x) {
  input_ = &x;
  const Matrix* in = &x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i].Forward(params, *in, &outs_[i]);
    const bool relu = i + 1 < layers_.size() || output_ == Output::kRelu;
    if (relu) outs_[i] = outs_[i].cwiseMax(T(0));
    in = &outs_[i];
  }
  return outs_.back();
}

template <typename T>
void Mlp<T>::Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx, GradMode mode) {
  CHECK(input_ != nullptr) << "Mlp::Backward before Forward";
  // g holds d loss / d (output of layer i, before its ReLU) at step i.
  const Matrix* g = &dy;
  Matrix* buffers[2] = {&grad_a_, &grad_b_};
  int next = 0;
  for (size_t k = layers_.size(); k-- > 0;) {
    const bool relu = k + 1 < layers_.size() || output_ == Output::kRelu;
    if (relu) {
      Matrix* masked = buffers[next];
      next ^= 1;
      Relu<T>::Backward(outs_[k], *g, masked);
      g = masked;
    }
    const Matrix& x = k == 0 ? *input_ : outs_[k - 1];
    if (k == 0) {
      layers_[k].Backward(params, x, *g, param_grad, dx, mode);
    } else {
      Matrix* gx = buffers[next];
      next ^= 1;
      layers_[k].Backward(params, x, *g, param_grad, gx, GradMode::kOverwrite);
      g = gx;
    }
  }
}

template class Linear<float>;
template class Linear<double>;
template struct Relu<float>;
template struct Relu<double>;
template struct Sigmoid<float>;
template struct Sigmoid<double>;
template struct Softmax<float>;
template struct Softmax<double>;
template struct BceWithLogits<float>;
template struct BceWithLogits<double>;
template class Mlp<float>;
template class Mlp<double>;

}  // namespace mtps
