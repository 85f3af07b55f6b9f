// Layers of the dense towers: Linear, ReLU, PReLU, BatchNorm, inverted Dropout,
// Sigmoid, row-wise softmax, binary cross-entropy on logits, and an MLP built from
// them, plus the small helpers every model shares (hidden-layer options from
// the config, the output-bias prior).
//
// Every layer works on a whole batch at once (B rows, one example per row,
// RowMatrix<T>), with matrix products for the linear maps. Layers own no
// weights: a Linear (or PReLU) reads its weights from the model's flat
// parameter array at a fixed offset (through Eigen::Map) and writes its
// gradient at the same offset of the flat gradient array. Templated on the
// scalar (float for training, double for gradient checks); instantiated for
// float and double in layers.cc so the Eigen kernels are compiled once.
//
// Initialisation (InitParams), all drawn from the caller's seeded
// std::mt19937_64 in layout order, so a seed fixes every parameter:
//   - Linear with Init::kHe (a layer followed by a ReLU or PReLU): W ~ U(-a, a)
//     with a = sqrt(6 / in) (He uniform), b = 0.
//   - Linear with Init::kXavier (a layer followed by a sigmoid or softmax, i.e.
//     the logit layer of a tower and the gates): a = sqrt(6 / (in + out))
//     (Glorot uniform), b = 0.
//   - PReLU: every slope = 0.25 (He et al. 2015), no random draw.
//   - BatchNorm: every scale gamma = 1, every shift beta = 0, no random draw
//     (so a config with batch_norm draws the same Linear weights as without).
//   - ReLU, Dropout, Sigmoid, Softmax: no parameters.
// A model may afterwards move its output biases to the label prior
// (Model::InitOutputBiases, LogOddsOfRate below).
#ifndef MTPS_WORKER_NN_LAYERS_H_
#define MTPS_WORKER_NN_LAYERS_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/eval/metrics.h"
#include "proto/config.pb.h"
#include "worker/nn/eigen.h"
#include "worker/nn/matmul.h"

namespace mtps {

// Largest width a model config may give a layer (keeps a typo such as an extra
// digit from allocating gigabytes).
constexpr int kMaxLayerWidth = 65536;

// Checks that every entry of a repeated width field is in [1, kMaxLayerWidth];
// the error names the field and index ("model.esmm.tower_hidden[1] must be in
// [1, 65536], got 0").
Status CheckLayerWidths(const std::vector<int>& widths, const std::string& field);

// The widths of a repeated width field, checked by CheckLayerWidths. With
// `output` (what the last width is, e.g. "the expert output width") the field
// must also be non-empty ("model.mmoe.expert_hidden must list at least one
// width (the expert output width)").
StatusOr<std::vector<int>> LayerWidths(const google::protobuf::RepeatedField<int32_t>& widths,
                                       const std::string& field, const char* output = nullptr);

// The widths of a tower: its hidden widths, then 1 (the logit layer).
std::vector<int> WithLogit(std::vector<int> hidden);

// One block of a model's flat parameter array (Model::ParamBlocks), for
// exports (worker/predict/model_export.h): a Linear's W (shape {in, out},
// row-major) or b ({out}), a BatchNorm's scales or shifts ({width}), a
// PReLU's slopes ({width}). `name` is a dotted path of the model's parts,
// e.g. "expert3.layer0.W", "gate1.b", "tower0.layer0.bn_scale"; the names
// tests/reference/torch_models.py gives the same blocks. Value type.
struct ParamBlock {
  std::string name;
  int64_t offset = 0;
  std::vector<int64_t> shape;
  int64_t size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Whether a Backward overwrites its input gradient or adds to it (for inputs
// shared by several layers, e.g. the MMOE experts and gates).
enum class GradMode { kOverwrite, kAccumulate };

// Draws a double uniformly from [-a, a) with the bits of one rng() call
// (fixed formula, so a seed gives the same parameters on every platform).
double UniformSymmetric(std::mt19937_64* rng, double a);

// The non-linearity after a hidden layer (ModelConfig.activation).
enum class Activation { kRelu, kPrelu };

// What every hidden layer of a model gets: its activation, the dropout
// rate applied after it (training only), whether a BatchNorm sits between
// its linear map and the activation, and the engine its linear maps multiply
// on (float models; null: Eigen's products). Value type; copies share the
// engine, which lives as long as a layer holds it.
struct HiddenOptions {
  Activation activation = Activation::kRelu;
  double dropout = 0;  // in [0, 1)
  bool batch_norm = false;
  std::shared_ptr<MatmulEngine> matmul = nullptr;
};

// Reads ModelConfig.activation, .dropout, .batch_norm and
// .compute_precision (a MatmulEngine of `compute_threads` threads for it,
// at least 1); the error names the field ("model.dropout must be in [0, 1),
// got 1").
StatusOr<HiddenOptions> HiddenOptionsFromConfig(const config::ModelConfig& config,
                                                int compute_threads = 1);

// Largest probability the output-bias prior uses (and 1 minus it the smallest).
constexpr double kPriorClamp = 1e-4;

// log(r / (1 - r)) for r = positives / total clamped to [kPriorClamp,
// 1 - kPriorClamp]. total must be > 0.
double LogOddsOfRate(double positives, double total);

// The column of label_names that is `name`; the error names `field` and the
// known labels ("model.esmm.click_label \"clk\" is not a data label (data.labels:
// click, conversion)").
StatusOr<int> FindLabel(const std::vector<std::string>& label_names, const std::string& name,
                        const std::string& field);

// Checks the task list of a one-task-per-label model (non-empty, distinct);
// `model` names it in the error ("model.ple needs at least one task: ...").
Status CheckTaskNames(const std::vector<std::string>& label_names, const std::string& model);

// Names the columns of an empty *out after `tasks` (Model::Evaluate's first
// call); afterwards *out must hold one column per task.
void StartEvalColumns(const std::vector<std::string>& tasks, std::vector<EvalColumn>* out);

// Sets params[bias_offset] to LogOddsOfRate of column `column` of labels over
// the rows where column `where` is 1 (every row when where < 0); leaves it
// unchanged when there is no such row.
template <typename T>
void SetBiasToPrior(const RowMatrix<T>& labels, int column, int where, int64_t bias_offset,
                    T* params);

// y = x W + b, W is in x out (row-major), b has out entries. Parameters at
// params[offset, offset + in*out) for W, then out entries for b.
// Immutable after construction; thread-safe.
template <typename T>
class Linear {
 public:
  using Matrix = RowMatrix<T>;
  enum class Init { kHe, kXavier };

  // `matmul` (may be null: Eigen) runs the products of a float layer; a
  // double layer (gradient checks) always uses Eigen.
  Linear(int in_dim, int out_dim, int64_t offset, Init init,
         std::shared_ptr<MatmulEngine> matmul = nullptr);

  int in_dim() const { return in_dim_; }
  int out_dim() const { return out_dim_; }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return static_cast<int64_t>(in_dim_) * out_dim_ + out_dim_; }
  // Offset of b in the flat array.
  int64_t bias_offset() const { return offset_ + static_cast<int64_t>(in_dim_) * out_dim_; }

  // Writes this layer's block of params (see the file comment).
  void InitParams(std::mt19937_64* rng, T* params) const;
  // Appends its blocks: `name`.W {in, out}, then `name`.b {out}.
  void AppendBlocks(const std::string& name, std::vector<ParamBlock>* blocks) const;

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
  std::shared_ptr<MatmulEngine> matmul_;
};

// Element-wise max(x, 0). Backward uses the output: dx = dy where y > 0
// (the subgradient at 0 is 0).
template <typename T>
struct Relu {
  static void Forward(const RowMatrix<T>& x, RowMatrix<T>* y);
  static void Backward(const RowMatrix<T>& y, const RowMatrix<T>& dy, RowMatrix<T>* dx);
};

// Parametric ReLU (He et al. 2015) over `width` units: y = x where x > 0,
// a_j x where x <= 0, one learned slope a_j per unit (column). The width
// slopes live at params[offset, offset + width) and start at 0.25.
// Immutable after construction; thread-safe.
template <typename T>
class Prelu {
 public:
  using Matrix = RowMatrix<T>;

  Prelu(int width, int64_t offset);

  int width() const { return width_; }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return width_; }

  void InitParams(T* params) const;

  // *y = prelu(x), resized to x's shape. y may alias x.
  void Forward(const T* params, const Matrix& x, Matrix* y) const;

  // Given x (the Forward input, not the output: a slope may be <= 0, so the
  // output does not tell the sign of x) and dy: overwrites the slopes' block
  // of param_grad with d loss / d a_j = sum over rows of dy * min(x, 0), and
  // writes *dx = dy where x > 0, a_j dy elsewhere (resized). dx may alias dy.
  void Backward(const T* params, const Matrix& x, const Matrix& dy, T* param_grad,
                Matrix* dx) const;

 private:
  int width_;
  int64_t offset_;
};

// Inverted dropout at rate p: in training each entry is kept with
// probability 1 - p and scaled by 1 / (1 - p), else zeroed, so evaluation
// (which skips the layer) needs no rescaling. The mask is drawn from the
// caller's RNG (the model's own, seeded at creation), 32 bits per entry.
// At p = 0 Forward copies and draws nothing.
// Keeps the mask of the last Forward for Backward; not thread-safe.
template <typename T>
class Dropout {
 public:
  using Matrix = RowMatrix<T>;

  explicit Dropout(double rate);

  double rate() const { return rate_; }

  // Draws a fresh mask of x's shape and writes *y = x * mask. y may alias x.
  void Forward(std::mt19937_64* rng, const Matrix& x, Matrix* y);
  // *dx = dy * mask of the last Forward (resized). dx may alias dy.
  void Backward(const Matrix& dy, Matrix* dx) const;
  // The mask of the last Forward: entries 0 or 1 / (1 - p).
  const Matrix& mask() const { return mask_; }

 private:
  double rate_;
  uint32_t threshold_;  // keep an entry when a 32-bit draw is >= threshold_
  T scale_;             // 1 / (1 - rate)
  Matrix mask_;
};

// Reads a model's running state (Model::SetState) front to back: each
// stateful layer takes its values in layout order, then Finish checks that
// nothing is left over. Holds a reference to the vector, which must outlive
// it. Not thread-safe.
template <typename T>
class StateReader {
 public:
  explicit StateReader(const std::vector<T>& state) : state_(state) {}

  // Position of the next value.
  int64_t position() const { return position_; }

  // The next n values, or InvalidArgument when fewer are left.
  StatusOr<const T*> Take(int64_t n) {
    const int64_t size = static_cast<int64_t>(state_.size());
    if (n > size - position_) {
      return Status::InvalidArgument("model state has " + std::to_string(size) +
                                     " values; the model's layers need more (reading " +
                                     std::to_string(n) + " at " + std::to_string(position_) + ")");
    }
    const T* at = state_.data() + position_;
    position_ += n;
    return at;
  }

  // OK when every value was taken.
  Status Finish() const {
    if (position_ != static_cast<int64_t>(state_.size())) {
      return Status::InvalidArgument("model state has " + std::to_string(state_.size()) +
                                     " values; the model's layers need " +
                                     std::to_string(position_));
    }
    return Status::OK();
  }

 private:
  const std::vector<T>& state_;
  int64_t position_ = 0;
};

// Batch normalisation (Ioffe & Szegedy 2015) over `width` units (columns):
// y = gamma * (x - mean) / sqrt(var + eps) + beta, eps = 1e-5, with a learned
// scale gamma_j and shift beta_j per unit, at params[offset, offset + width)
// and params[offset + width, offset + 2 width); gamma starts at 1, beta at 0.
//
// Training (Forward with training = true): mean and var are the batch's, per
// column, var the biased one (divided by B), and the backward pass is exact
// through them (they depend on every row). Each training Forward then moves
// the running statistics as PyTorch does, momentum m = 0.1:
//   running_mean = (1 - m) running_mean + m mean,
//   running_var  = (1 - m) running_var  + m var * B / (B - 1)  (unbiased).
// Evaluation (training = false): mean and var are the running statistics
// (which start at 0 and 1), left unchanged; Backward after it treats them as
// constants.
// A training batch of one row: its variance is 0, so every unit normalises to
// exactly 0 and y = beta (d loss / d x = 0, d loss / d gamma = 0); the running
// mean moves as usual and the running variance, which one row cannot
// estimate, stays as it is. (PyTorch refuses such a batch.) An empty batch
// changes nothing.
//
// The running statistics are this object's own state, not parameters: they
// are not in the flat parameter array and never reach the servers (each
// worker keeps its own; see Model::State).
// Keeps what Backward needs from the last Forward; not thread-safe.
template <typename T>
class BatchNorm {
 public:
  using Matrix = RowMatrix<T>;
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  static constexpr double kEpsilon = 1e-5;
  static constexpr double kMomentum = 0.1;

  BatchNorm(int width, int64_t offset);

  int width() const { return width_; }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return 2 * static_cast<int64_t>(width_); }

  // gamma = 1, beta = 0.
  void InitParams(T* params) const;

  // *y = the normalised x (see the class comment), resized to x's shape; in
  // training also updates the running statistics. y must not alias x.
  void Forward(const T* params, const Matrix& x, bool training, Matrix* y);

  // Backward of the last Forward given dy: overwrites the gamma and beta
  // blocks of param_grad and writes *dx (resized). dx must not alias dy.
  void Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx) const;

  const Row& running_mean() const { return running_mean_; }
  const Row& running_var() const { return running_var_; }

  // State: the running mean, then the running variance (2 * width values).
  int64_t state_size() const { return 2 * static_cast<int64_t>(width_); }
  void AppendState(std::vector<T>* state) const;
  // Takes state_size() values from *reader; InvalidArgument (naming the
  // position) when a mean is not finite or a variance not finite and >= 0,
  // leaving the statistics unchanged.
  Status ReadState(StateReader<T>* reader);

 private:
  int width_;
  int64_t offset_;
  Row running_mean_;
  Row running_var_;
  // From the last Forward.
  bool batch_stats_ = false;  // normalised with the batch's statistics
  Matrix normalized_;         // (x - mean) / sqrt(var + eps), B x width
  Row inv_std_;               // 1 / sqrt(var + eps)
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
  // The same restricted to the rows where mask (0/1 entries) is 1: returns
  // the mean of l over those rows and writes dz = mask (sigmoid(z) - y) / m,
  // m = number of such rows; 0 and a zero dz when m = 0.
  static T MaskedForwardBackward(const ConstColumnRef<T>& logits, const ConstColumnRef<T>& labels,
                                 const ConstColumnRef<T>& mask, RowMatrix<T>* dz);
};

// A stack of Linear layers, each hidden layer followed by a BatchNorm (with
// HiddenOptions.batch_norm), its activation (HiddenOptions.activation) and
// then dropout (HiddenOptions.dropout, in training only). The last layer is
// linear (Output::kLinear, a tower ending in a logit; never batch-normalised)
// or a hidden layer too (Output::kHidden, an expert or a bottom, whose output
// other layers read).
//
// Parameter layout, from `offset`, layer by layer: the Linear block (W in x
// out row-major, then b), then, when the layer is hidden, with batch_norm its
// out scales gamma and out shifts beta, then, with PReLU, its out slopes.
// Without batch_norm the layout is exactly Linear [+ slopes] per layer. Init:
// He for hidden layers, Xavier for a linear last layer.
//
// State (batch_norm only): the running mean and variance of every BatchNorm,
// layer by layer (BatchNorm::AppendState); empty without batch_norm.
//
// Owns its activation workspaces (reused between batches, so a steady batch
// size allocates nothing), its dropout masks and its batch-norm running
// statistics. Forward keeps a pointer to its input, which must stay alive and
// unchanged until Backward. Not thread-safe.
template <typename T>
class Mlp {
 public:
  using Matrix = RowMatrix<T>;
  enum class Output { kLinear, kHidden };

  // widths: output widths of the layers in order (the last is the output
  // width); must be non-empty and positive.
  Mlp(int in_dim, const std::vector<int>& widths, Output output, int64_t offset,
      const HiddenOptions& hidden = HiddenOptions());

  int in_dim() const { return in_dim_; }
  int out_dim() const { return linears_.back().out_dim(); }
  int64_t offset() const { return offset_; }
  int64_t num_params() const { return num_params_; }
  // Offset of the last layer's bias (the logit bias of a tower).
  int64_t output_bias_offset() const { return linears_.back().bias_offset(); }

  void InitParams(std::mt19937_64* rng, T* params) const;
  // Appends its blocks in layout order, layer i named `name`.layer<i>:
  // .W, .b (Linear::AppendBlocks), then for a hidden layer .bn_scale and
  // .bn_shift (batch_norm) and .prelu (PReLU), each {width}.
  void AppendBlocks(const std::string& name, std::vector<ParamBlock>* blocks) const;

  // Runs the stack on x (B x in_dim); returns the B x out_dim output, valid
  // until the next Forward. dropout_rng: the model's RNG in training (draws
  // fresh masks; batch norm uses batch statistics and updates its running
  // ones), nullptr in evaluation (no dropout; batch norm uses its running
  // statistics).
  const Matrix& Forward(const T* params, const Matrix& x, std::mt19937_64* dropout_rng);

  // Backward of the last Forward given dy = d loss / d output: overwrites the
  // MLP's block of param_grad; writes or adds d loss / d x into *dx unless dx
  // is null.
  void Backward(const T* params, const Matrix& dy, T* param_grad, Matrix* dx,
                GradMode mode = GradMode::kOverwrite);

  // The batch norms, one per hidden layer (empty without batch_norm).
  const std::vector<BatchNorm<T>>& batch_norms() const { return batch_norms_; }
  // Running state (see the class comment): its length, appending it, and
  // restoring it (errors as BatchNorm::ReadState).
  int64_t state_size() const;
  void AppendState(std::vector<T>* state) const;
  Status ReadState(StateReader<T>* reader);

 private:
  bool IsHidden(size_t layer) const {
    return layer + 1 < linears_.size() || output_ == Output::kHidden;
  }

  int in_dim_;
  Output output_;
  HiddenOptions hidden_;
  int64_t offset_;
  int64_t num_params_ = 0;
  std::vector<Linear<T>> linears_;
  std::vector<BatchNorm<T>> batch_norms_;  // one per hidden layer with batch_norm, else empty
  std::vector<Prelu<T>> prelus_;           // one per hidden layer with PReLU, else empty
  std::vector<Dropout<T>> dropouts_;       // one per hidden layer when dropout > 0, else empty
  const Matrix* input_ = nullptr;
  bool dropped_ = false;      // whether the last Forward applied dropout
  std::vector<Matrix> pre_;   // pre_[i]: layer i's pre-activation (kept for PReLU / ReLU masks)
  Matrix linear_out_;         // with batch_norm: a hidden layer's linear output, workspace
  std::vector<Matrix> outs_;  // outs_[i]: layer i's output after activation and dropout
  Matrix grad_a_;             // gradient workspaces, ping-ponged between layers
  Matrix grad_b_;
};

}  // namespace mtps

#endif  // MTPS_WORKER_NN_LAYERS_H_
