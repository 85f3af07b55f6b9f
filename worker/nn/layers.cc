// Layers of the dense towers (see layers.h); instantiated for float and double.

#include "worker/nn/eigen.h"

#include "worker/nn/layers.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <type_traits>

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

StatusOr<std::vector<int>> LayerWidths(const google::protobuf::RepeatedField<int32_t>& widths,
                                       const std::string& field, const char* output) {
  if (output != nullptr && widths.empty()) {
    return Status::InvalidArgument(field + " must list at least one width (" + output + ")");
  }
  std::vector<int> out(widths.begin(), widths.end());
  MTPS_RETURN_IF_ERROR(CheckLayerWidths(out, field));
  return out;
}

std::vector<int> WithLogit(std::vector<int> hidden) {
  hidden.push_back(1);
  return hidden;
}

double UniformSymmetric(std::mt19937_64* rng, double a) {
  // 53 random bits -> [0, 1), exactly representable in a double.
  const double u = static_cast<double>((*rng)() >> 11) * 0x1.0p-53;
  return a * (2.0 * u - 1.0);
}

StatusOr<HiddenOptions> HiddenOptionsFromConfig(const config::ModelConfig& config,
                                                int compute_threads) {
  HiddenOptions options;
  switch (config.activation()) {
    case config::ModelConfig::RELU:
      options.activation = Activation::kRelu;
      break;
    case config::ModelConfig::PRELU:
      options.activation = Activation::kPrelu;
      break;
    default:
      return Status::InvalidArgument("model.activation: unknown value " +
                                     std::to_string(static_cast<int>(config.activation())));
  }
  options.batch_norm = config.batch_norm();
  const double rate = config.dropout();
  // !(rate >= 0) also rejects NaN.
  if (!(rate >= 0) || rate >= 1) {
    return Status::InvalidArgument("model.dropout must be in [0, 1), got " + std::to_string(rate));
  }
  options.dropout = rate;
  switch (config.compute_precision()) {
    case config::ModelConfig::FP32:
      options.matmul = std::make_shared<MatmulEngine>(ComputePrecision::kFp32, compute_threads);
      break;
    case config::ModelConfig::BF16:
      if (!MatmulEngine::Supported(ComputePrecision::kBf16)) {
        return Status::InvalidArgument(
            "model.compute_precision BF16: oneDNN has no bf16 matrix product on this CPU (it "
            "needs AVX-512); use FP32");
      }
      options.matmul = std::make_shared<MatmulEngine>(ComputePrecision::kBf16, compute_threads);
      break;
    default:
      return Status::InvalidArgument("model.compute_precision: unknown value " +
                                     std::to_string(static_cast<int>(config.compute_precision())));
  }
  return options;
}

double LogOddsOfRate(double positives, double total) {
  CHECK_GT(total, 0);
  const double rate = std::clamp(positives / total, kPriorClamp, 1 - kPriorClamp);
  return std::log(rate / (1 - rate));
}

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

Status CheckTaskNames(const std::vector<std::string>& label_names, const std::string& model) {
  if (label_names.empty()) {
    return Status::InvalidArgument(model + " needs at least one task: data.labels is empty");
  }
  if (std::set<std::string>(label_names.begin(), label_names.end()).size() != label_names.size()) {
    return Status::InvalidArgument(model + " task names (data.labels[].name) must be distinct");
  }
  return Status::OK();
}

void StartEvalColumns(const std::vector<std::string>& tasks, std::vector<EvalColumn>* out) {
  if (out->empty()) {
    out->resize(tasks.size());
    for (size_t k = 0; k < tasks.size(); ++k) (*out)[k].task = tasks[k];
  }
  CHECK_EQ(out->size(), tasks.size());
}

template <typename T>
void SetBiasToPrior(const RowMatrix<T>& labels, int column, int where, int64_t bias_offset,
                    T* params) {
  CHECK_LT(column, labels.cols());
  CHECK_LT(where, labels.cols());
  double positives = 0;
  double total = 0;
  if (where < 0) {
    positives = static_cast<double>((labels.col(column).array() > T(0.5)).count());
    total = static_cast<double>(labels.rows());
  } else {
    const auto in = labels.col(where).array() > T(0.5);
    positives = static_cast<double>((in && (labels.col(column).array() > T(0.5))).count());
    total = static_cast<double>(in.count());
  }
  if (total > 0) params[bias_offset] = static_cast<T>(LogOddsOfRate(positives, total));
}
template void SetBiasToPrior<float>(const RowMatrix<float>&, int, int, int64_t, float*);
template void SetBiasToPrior<double>(const RowMatrix<double>&, int, int, int64_t, double*);

// ---------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------

template <typename T>
Linear<T>::Linear(int in_dim, int out_dim, int64_t offset, Init init,
                  std::shared_ptr<MatmulEngine> matmul)
    : in_dim_(in_dim),
      out_dim_(out_dim),
      offset_(offset),
      init_(init),
      matmul_(std::is_same_v<T, float> ? std::move(matmul) : nullptr) {
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
void Linear<T>::AppendBlocks(const std::string& name, std::vector<ParamBlock>* blocks) const {
  blocks->push_back({name + ".W", offset_, {in_dim_, out_dim_}});
  blocks->push_back({name + ".b", bias_offset(), {out_dim_}});
}

template <typename T>
void Linear<T>::Forward(const T* params, const Matrix& x, Matrix* y) const {
  DCHECK_EQ(x.cols(), in_dim_);
  DCHECK_NE(&x, y);
  Eigen::Map<const Matrix> w(params + offset_, in_dim_, out_dim_);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(
      params + offset_ + static_cast<int64_t>(in_dim_) * out_dim_, out_dim_);
  y->resize(x.rows(), out_dim_);
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_ != nullptr) {
      matmul_->Multiply(false, false, x.rows(), out_dim_, in_dim_, x.data(), w.data(), y->data(),
                        /*accumulate=*/false);
      y->rowwise() += b;
      return;
    }
  }
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
  db = dy.colwise().sum();
  Eigen::Map<const Matrix> w(params + offset_, in_dim_, out_dim_);
  if constexpr (std::is_same_v<T, float>) {
    if (matmul_ != nullptr) {
      const int64_t rows = x.rows();
      matmul_->Multiply(true, false, in_dim_, out_dim_, rows, x.data(), dy.data(), dw.data(),
                        /*accumulate=*/false);
      if (dx == nullptr) return;
      DCHECK(dx != &dy);
      if (mode == GradMode::kOverwrite) {
        dx->resize(dy.rows(), in_dim_);
      } else {
        DCHECK_EQ(dx->rows(), dy.rows());
        DCHECK_EQ(dx->cols(), in_dim_);
      }
      matmul_->Multiply(false, true, rows, in_dim_, out_dim_, dy.data(), w.data(), dx->data(),
                        /*accumulate=*/mode == GradMode::kAccumulate);
      return;
    }
  }
  dw.noalias() = x.transpose() * dy;
  if (dx == nullptr) return;
  DCHECK(dx != &dy);
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
Prelu<T>::Prelu(int width, int64_t offset) : width_(width), offset_(offset) {
  CHECK_GT(width, 0);
  CHECK_GE(offset, 0);
}

template <typename T>
void Prelu<T>::InitParams(T* params) const {
  std::fill(params + offset_, params + offset_ + width_, T(0.25));
}

template <typename T>
void Prelu<T>::Forward(const T* params, const Matrix& x, Matrix* y) const {
  DCHECK_EQ(x.cols(), width_);
  Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> a(params + offset_, width_);
  y->resize(x.rows(), x.cols());
  y->array() = (x.array() > T(0)).select(x.array(), x.array().rowwise() * a);
}

template <typename T>
void Prelu<T>::Backward(const T* params, const Matrix& x, const Matrix& dy, T* param_grad,
                        Matrix* dx) const {
  DCHECK_EQ(x.cols(), width_);
  DCHECK_EQ(dy.cols(), width_);
  DCHECK_EQ(x.rows(), dy.rows());
  Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> a(params + offset_, width_);
  Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> da(param_grad + offset_, width_);
  da = (dy.array() * x.array().min(T(0))).colwise().sum();
  dx->resize(dy.rows(), dy.cols());
  dx->array() = (x.array() > T(0)).select(dy.array(), dy.array().rowwise() * a);
}

template <typename T>
Dropout<T>::Dropout(double rate) : rate_(rate) {
  CHECK(rate >= 0 && rate < 1) << "dropout rate " << rate;
  // Keep probability (2^32 - threshold) / 2^32 = 1 - rate up to 2^-32.
  threshold_ = static_cast<uint32_t>(std::min(std::round(rate * 4294967296.0), 4294967295.0));
  scale_ = static_cast<T>(1.0 / (1.0 - rate));
}

template <typename T>
void Dropout<T>::Forward(std::mt19937_64* rng, const Matrix& x, Matrix* y) {
  if (y != &x) *y = x;
  if (rate_ == 0) return;
  mask_.resize(x.rows(), x.cols());
  T* m = mask_.data();
  const Eigen::Index n = mask_.size();
  const T scale = scale_;
  const uint32_t threshold = threshold_;
  Eigen::Index i = 0;
  for (; i + 1 < n; i += 2) {  // two 32-bit draws per call
    const uint64_t bits = (*rng)();
    m[i] = static_cast<uint32_t>(bits) >= threshold ? scale : T(0);
    m[i + 1] = static_cast<uint32_t>(bits >> 32) >= threshold ? scale : T(0);
  }
  if (i < n) m[i] = static_cast<uint32_t>((*rng)()) >= threshold ? scale : T(0);
  y->array() *= mask_.array();
}

template <typename T>
void Dropout<T>::Backward(const Matrix& dy, Matrix* dx) const {
  if (dx != &dy) *dx = dy;
  if (rate_ == 0) return;
  DCHECK_EQ(dy.rows(), mask_.rows());
  DCHECK_EQ(dy.cols(), mask_.cols());
  dx->array() *= mask_.array();
}

// ---------------------------------------------------------------------------
// BatchNorm
// ---------------------------------------------------------------------------

template <typename T>
BatchNorm<T>::BatchNorm(int width, int64_t offset)
    : width_(width),
      offset_(offset),
      running_mean_(Row::Zero(width)),
      running_var_(Row::Ones(width)) {
  CHECK_GT(width, 0);
  CHECK_GE(offset, 0);
}

template <typename T>
void BatchNorm<T>::InitParams(T* params) const {
  std::fill(params + offset_, params + offset_ + width_, T(1));
  std::fill(params + offset_ + width_, params + offset_ + 2 * width_, T(0));
}

template <typename T>
void BatchNorm<T>::Forward(const T* params, const Matrix& x, bool training, Matrix* y) {
  DCHECK_EQ(x.cols(), width_);
  DCHECK_NE(&x, y);
  Eigen::Map<const Row> gamma(params + offset_, width_);
  Eigen::Map<const Row> beta(params + offset_ + width_, width_);
  const Eigen::Index n = x.rows();
  batch_stats_ = training;
  normalized_.resize(n, width_);
  if (training) {
    if (n == 0) {
      inv_std_.setZero(width_);
      y->resize(0, width_);
      return;
    }
    const Row mean = x.array().colwise().mean();
    normalized_.array() = x.array().rowwise() - mean;
    // Biased variance of the centred values (two passes: no cancellation).
    const Row var = normalized_.array().square().colwise().sum() / static_cast<T>(n);
    inv_std_ = (var + static_cast<T>(kEpsilon)).rsqrt();
    normalized_.array().rowwise() *= inv_std_;
    const T m = static_cast<T>(kMomentum);
    running_mean_ = (T(1) - m) * running_mean_ + m * mean;
    if (n > 1) {
      running_var_ =
          (T(1) - m) * running_var_ + m * var * (static_cast<T>(n) / static_cast<T>(n - 1));
    }
  } else {
    inv_std_ = (running_var_ + static_cast<T>(kEpsilon)).rsqrt();
    normalized_.array() = (x.array().rowwise() - running_mean_).rowwise() * inv_std_;
  }
  y->resize(n, width_);
  y->array() = (normalized_.array().rowwise() * gamma).rowwise() + beta;
}

template <typename T>
void BatchNorm<T>::Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx) const {
  DCHECK_EQ(dy.cols(), width_);
  DCHECK_EQ(dy.rows(), normalized_.rows());
  DCHECK(dx != &dy);
  Eigen::Map<const Row> gamma(params + offset_, width_);
  Eigen::Map<Row> dgamma(param_grad + offset_, width_);
  Eigen::Map<Row> dbeta(param_grad + offset_ + width_, width_);
  const Eigen::Index n = dy.rows();
  dgamma = (dy.array() * normalized_.array()).colwise().sum();
  dbeta = dy.array().colwise().sum();
  dx->resize(n, width_);
  if (n == 0) return;
  const Row scale = gamma * inv_std_;
  if (!batch_stats_) {
    dx->array() = dy.array().rowwise() * scale;
    return;
  }
  // x_hat = (x - mean) inv_std with mean and var over the batch:
  // dx = gamma inv_std (dy - mean(dy) - x_hat mean(dy x_hat)).
  const T inv_n = T(1) / static_cast<T>(n);
  const Row mean_dy = dbeta * inv_n;
  const Row mean_dy_xhat = dgamma * inv_n;
  dx->array() =
      ((dy.array().rowwise() - mean_dy) - normalized_.array().rowwise() * mean_dy_xhat).rowwise() *
      scale;
}

template <typename T>
void BatchNorm<T>::AppendState(std::vector<T>* state) const {
  state->insert(state->end(), running_mean_.data(), running_mean_.data() + width_);
  state->insert(state->end(), running_var_.data(), running_var_.data() + width_);
}

template <typename T>
Status BatchNorm<T>::ReadState(StateReader<T>* reader) {
  const int64_t start = reader->position();
  MTPS_ASSIGN_OR_RETURN(const T* values, reader->Take(state_size()));
  for (int j = 0; j < 2 * width_; ++j) {
    const T v = values[j];
    const bool is_var = j >= width_;
    if (!std::isfinite(v) || (is_var && v < T(0))) {
      return Status::InvalidArgument("model state[" + std::to_string(start + j) +
                                     "] = " + std::to_string(v) + ": a batch-norm running " +
                                     (is_var ? "variance" : "mean") + " must be finite" +
                                     (is_var ? " and >= 0" : ""));
    }
  }
  running_mean_ = Eigen::Map<const Row>(values, width_);
  running_var_ = Eigen::Map<const Row>(values + width_, width_);
  return Status::OK();
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
  const Eigen::Array<T, Eigen::Dynamic, 1> max = x.array().rowwise().maxCoeff();
  y->resize(x.rows(), x.cols());
  y->array() = (x.array().colwise() - max).exp();
  const Eigen::Array<T, Eigen::Dynamic, 1> sum = y->array().rowwise().sum();
  y->array().colwise() /= sum;
}

template <typename T>
void Softmax<T>::Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx) {
  DCHECK_EQ(y.rows(), dy.rows());
  DCHECK_EQ(y.cols(), dy.cols());
  const Eigen::Array<T, Eigen::Dynamic, 1> dot = (y.array() * dy.array()).rowwise().sum();
  dx->resize(y.rows(), y.cols());
  dx->array() = y.array() * (dy.array().colwise() - dot);
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
  dz->col(0).array() =
      (logits.array().unaryExpr([](T v) { return StableSigmoid(v); }) - labels.array()) * inv_n;
}

template <typename T>
T BceWithLogits<T>::MaskedForwardBackward(const ConstColumnRef<T>& logits,
                                          const ConstColumnRef<T>& labels,
                                          const ConstColumnRef<T>& mask, RowMatrix<T>* dz) {
  DCHECK_EQ(logits.rows(), labels.rows());
  DCHECK_EQ(logits.rows(), mask.rows());
  const Eigen::Index n = logits.rows();
  dz->resize(n, 1);
  const auto keep = mask.array() > T(0.5);
  const Eigen::Index m = keep.count();
  if (m == 0) {
    dz->setZero();
    return T(0);
  }
  const T inv_m = T(1) / static_cast<T>(m);
  const auto z = logits.array();
  const auto y = labels.array();
  // select, not a product with the mask: rows outside it may hold anything
  // (even an infinite logit) without reaching the loss.
  const T sum = keep.select(z.max(T(0)) - z * y + (-z.abs()).exp().log1p(), T(0)).sum();
  dz->col(0).array() =
      keep.select((z.unaryExpr([](T v) { return StableSigmoid(v); }) - y) * inv_m, T(0));
  return sum * inv_m;
}

// ---------------------------------------------------------------------------
// Mlp
// ---------------------------------------------------------------------------

template <typename T>
Mlp<T>::Mlp(int in_dim, const std::vector<int>& widths, Output output, int64_t offset,
            const HiddenOptions& hidden)
    : in_dim_(in_dim), output_(output), hidden_(hidden), offset_(offset) {
  CHECK(!widths.empty());
  int in = in_dim;
  int64_t at = offset;
  linears_.reserve(widths.size());
  for (size_t i = 0; i < widths.size(); ++i) {
    const bool is_hidden = i + 1 < widths.size() || output == Output::kHidden;
    const auto init = is_hidden ? Linear<T>::Init::kHe : Linear<T>::Init::kXavier;
    linears_.emplace_back(in, widths[i], at, init, hidden.matmul);
    at += linears_.back().num_params();
    if (is_hidden && hidden.batch_norm) {
      batch_norms_.emplace_back(widths[i], at);
      at += batch_norms_.back().num_params();
    }
    if (is_hidden && hidden.activation == Activation::kPrelu) {
      prelus_.emplace_back(widths[i], at);
      at += prelus_.back().num_params();
    }
    if (is_hidden && hidden.dropout > 0) dropouts_.emplace_back(hidden.dropout);
    in = widths[i];
  }
  num_params_ = at - offset;
  pre_.resize(linears_.size());
  outs_.resize(linears_.size());
}

template <typename T>
void Mlp<T>::AppendBlocks(const std::string& name, std::vector<ParamBlock>* blocks) const {
  for (size_t i = 0; i < linears_.size(); ++i) {
    const std::string layer = name + ".layer" + std::to_string(i);
    linears_[i].AppendBlocks(layer, blocks);
    const int64_t width = linears_[i].out_dim();
    if (i < batch_norms_.size()) {
      blocks->push_back({layer + ".bn_scale", batch_norms_[i].offset(), {width}});
      blocks->push_back({layer + ".bn_shift", batch_norms_[i].offset() + width, {width}});
    }
    if (i < prelus_.size()) blocks->push_back({layer + ".prelu", prelus_[i].offset(), {width}});
  }
}

template <typename T>
void Mlp<T>::InitParams(std::mt19937_64* rng, T* params) const {
  for (size_t i = 0; i < linears_.size(); ++i) {
    linears_[i].InitParams(rng, params);
    if (i < batch_norms_.size()) batch_norms_[i].InitParams(params);
    if (i < prelus_.size()) prelus_[i].InitParams(params);
  }
}

template <typename T>
const typename Mlp<T>::Matrix& Mlp<T>::Forward(const T* params, const Matrix& x,
                                               std::mt19937_64* dropout_rng) {
  input_ = &x;
  dropped_ = dropout_rng != nullptr && !dropouts_.empty();
  const bool training = dropout_rng != nullptr;
  const bool prelu = !prelus_.empty();
  const bool batch_norm = !batch_norms_.empty();
  const Matrix* in = &x;
  for (size_t i = 0; i < linears_.size(); ++i) {
    if (!IsHidden(i)) {
      linears_[i].Forward(params, *in, &outs_[i]);
      in = &outs_[i];
      continue;
    }
    // The pre-activation z (linear map, then batch norm): kept in pre_ for
    // PReLU and for ReLU under dropout; else ReLU runs in place on outs_,
    // whose output alone gives the backward mask.
    Matrix* z = prelu || dropped_ ? &pre_[i] : &outs_[i];
    if (batch_norm) {
      linears_[i].Forward(params, *in, &linear_out_);
      batch_norms_[i].Forward(params, linear_out_, training, z);
    } else {
      linears_[i].Forward(params, *in, z);
    }
    if (prelu) {
      prelus_[i].Forward(params, pre_[i], &outs_[i]);
    } else if (dropped_) {
      outs_[i] = pre_[i].cwiseMax(T(0));
    } else {
      outs_[i] = outs_[i].cwiseMax(T(0));
    }
    if (dropped_ && IsHidden(i)) dropouts_[i].Forward(dropout_rng, outs_[i], &outs_[i]);
    in = &outs_[i];
  }
  return outs_.back();
}

template <typename T>
void Mlp<T>::Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx, GradMode mode) {
  CHECK(input_ != nullptr) << "Mlp::Backward before Forward";
  // g holds d loss / d (linear output of layer k) after step k's activation part.
  const Matrix* g = &dy;
  Matrix* buffers[2] = {&grad_a_, &grad_b_};
  int next = 0;
  const bool prelu = !prelus_.empty();
  for (size_t k = linears_.size(); k-- > 0;) {
    if (IsHidden(k)) {
      Matrix* masked = buffers[next];
      next ^= 1;
      const Matrix* from = g;
      if (dropped_) {
        dropouts_[k].Backward(*g, masked);
        from = masked;
      }
      if (prelu) {
        prelus_[k].Backward(params, pre_[k], *from, param_grad, masked);
      } else {
        // ReLU: pass where the linear output was > 0 (pre_ when dropout kept
        // it, else the in-place output, which is > 0 exactly there).
        const Matrix& sign = dropped_ ? pre_[k] : outs_[k];
        masked->resize(from->rows(), from->cols());
        masked->array() = (sign.array() > T(0)).select(from->array(), T(0));
      }
      g = masked;
      if (!batch_norms_.empty()) {
        Matrix* normed = buffers[next];
        next ^= 1;
        batch_norms_[k].Backward(params, *g, param_grad, normed);
        g = normed;
      }
    }
    const Matrix& x = k == 0 ? *input_ : outs_[k - 1];
    if (k == 0) {
      linears_[k].Backward(params, x, *g, param_grad, dx, mode);
    } else {
      Matrix* gx = buffers[next];
      next ^= 1;
      linears_[k].Backward(params, x, *g, param_grad, gx, GradMode::kOverwrite);
      g = gx;
    }
  }
}

template <typename T>
int64_t Mlp<T>::state_size() const {
  int64_t size = 0;
  for (const BatchNorm<T>& bn : batch_norms_) size += bn.state_size();
  return size;
}

template <typename T>
void Mlp<T>::AppendState(std::vector<T>* state) const {
  for (const BatchNorm<T>& bn : batch_norms_) bn.AppendState(state);
}

template <typename T>
Status Mlp<T>::ReadState(StateReader<T>* reader) {
  for (BatchNorm<T>& bn : batch_norms_) MTPS_RETURN_IF_ERROR(bn.ReadState(reader));
  return Status::OK();
}

template class Linear<float>;
template class Linear<double>;
template struct Relu<float>;
template struct Relu<double>;
template class BatchNorm<float>;
template class BatchNorm<double>;
template class Prelu<float>;
template class Prelu<double>;
template class Dropout<float>;
template class Dropout<double>;
template struct Sigmoid<float>;
template struct Sigmoid<double>;
template struct Softmax<float>;
template struct Softmax<double>;
template struct BceWithLogits<float>;
template struct BceWithLogits<double>;
template class Mlp<float>;
template class Mlp<double>;

}  // namespace mtps
