// Model: the dense multi-task part of a recommendation model, run on a worker.
//
// A model owns no parameters: they live in one flat array (pulled from the
// parameter servers, split over them in contiguous blocks), and the model
// reads it and writes gradients of the same layout. Models are templated on
// the scalar so the gradient checks run in double; training uses float.
// A Model keeps activation workspaces and its dropout RNG between calls, so
// it is not thread-safe; use one per thread.
//
// Running state. With ModelConfig.batch_norm a model also owns the running
// mean and variance of its batch norms (worker/nn/layers.h BatchNorm). They are
// the worker's own model state, not parameters: they never go to the servers.
// Each worker updates its own from its own training batches (as PyTorch
// DistributedDataParallel does without SyncBatchNorm); workers read i.i.d.
// shares of the data, so their estimates agree up to sampling noise, and each
// worker evaluates with its own. State() / SetState() expose them for
// checkpoints.
//
// Input rows. A model reads `embedding_groups()` copies of the pooled sparse
// embeddings (a group is one full set of slots, pulled with its own salted
// keys, so models with separate embeddings per tower get them) and then the
// dense features: [group 0 (sparse_width) | group 1 | ... | dense
// (dense_width)], input_dim() = groups * sparse_width + dense_width.
#ifndef MTPS_WORKER_MODELS_MODEL_H_
#define MTPS_WORKER_MODELS_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/nn/eigen.h"

#include "common/base/status.h"
#include "common/eval/metrics.h"
#include "proto/config.pb.h"
#include "worker/nn/layers.h"

namespace mtps {

// Widths of the parts of an input row: the pooled embeddings of one group
// (slots * embedding_dim) and the dense features.
struct ModelInputs {
  int sparse_width = 0;
  int dense_width = 0;
  // Threads of the dense layers' matrix products (>= 1; train.compute_threads).
  int compute_threads = 1;
};

template <typename T>
class Model {
 public:
  using Matrix = RowMatrix<T>;
  virtual ~Model() = default;

  // Length of the flat parameter array.
  virtual int64_t num_params() const = 0;
  // Width of an input row: embedding_groups() groups of pooled embeddings of
  // every slot, then the dense features (see the file comment).
  virtual int input_dim() const = 0;
  // Number of embedding groups the input row holds (1: every tower shares
  // the embeddings).
  virtual int embedding_groups() const { return 1; }
  // Names of the loss terms, in the order ForwardBackward reports them.
  virtual const std::vector<std::string>& loss_names() const = 0;
  // Names of the evaluation tasks, in the order Evaluate appends them.
  virtual const std::vector<std::string>& eval_task_names() const = 0;

  // The blocks of the flat parameter array in layout order (the layout the
  // model's header documents), contiguous from 0 to num_params(); for
  // exports that rebuild the model elsewhere (worker/predict/model_export.h).
  virtual std::vector<ParamBlock> ParamBlocks() const = 0;

  // Fills params[0..num_params) deterministically from seed (output biases 0).
  virtual void InitParams(uint64_t seed, T* params) const = 0;

  // Output-bias prior (ModelConfig.output_bias_from_prior; a no-op when it
  // is false): given a sample of label rows (N x number of data labels, data
  // label order), sets each task's output-layer bias in params to the
  // log-odds of its positive rate in the sample, clamped to [1e-4, 1 - 1e-4]
  // (rates over the rows the task is trained on, e.g. conversions among
  // clicked rows for a CVR tower). A task with no such row keeps its bias.
  // Called after InitParams.
  virtual void InitOutputBiases(const Matrix& labels, T* params) const = 0;

  // Restarts the dropout mask sequence from seed (CreateModel seeds it
  // first). Masks are drawn in ForwardBackward only.
  virtual void SeedDropout(uint64_t seed) = 0;

  // Forward and backward over a batch, in training mode (dropout on; batch
  // norms use the batch's statistics and update their running ones). input
  // is B x input_dim(); labels is B x (number of data labels), in
  // FeatureSchema::label_names order. Loss is the sum of the loss terms,
  // each the mean over the examples the term covers (the batch, or e.g. its
  // clicked rows; 0 with zero gradient when it covers none).
  // Overwrites param_grad[0..num_params) with d loss / d params and
  // *input_grad with d loss / d input (B x input_dim). Writes each term's
  // mean loss into *losses.
  virtual void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels,
                               T* param_grad, Matrix* input_grad, std::vector<T>* losses) = 0;

  // The predictions of the latest ForwardBackward, made before its update:
  // appends to (*out)[i] the score and label of every example loss term i
  // covers (loss_names() order; e.g. a naive CVR term only the clicked
  // rows), as Evaluate does for the eval tasks. `labels` are that call's.
  // *out is resized to the number of loss terms if smaller. The workers'
  // running training AUC (common/eval/running_auc.h) is made of these.
  virtual void TrainingScores(const Matrix& labels, std::vector<EvalColumn>* out) const = 0;

  // The model's running state (see the file comment): the batch norms'
  // running means and variances in parameter-layout order (each BatchNorm:
  // its means, then its variances); empty for a model without any.
  virtual std::vector<T> State() const { return {}; }
  // Restores what State() returned. InvalidArgument when the length differs
  // from State()'s or a value is invalid (a non-finite mean, a negative or
  // non-finite variance); then the state is unspecified (partly restored).
  virtual Status SetState(const std::vector<T>& state) {
    if (state.empty()) return Status::OK();
    return Status::InvalidArgument("model state has " + std::to_string(state.size()) +
                                   " values; this model keeps none");
  }

  // Forward only, in evaluation mode (no dropout; batch norms use their
  // running statistics and do not update them); appends to (*out)[i] the scores and labels of
  // eval task i for the examples that task is evaluated on. *out is resized to the number of eval
  // tasks if empty.
  virtual void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                        std::vector<EvalColumn>* out) = 0;

  // Forward only, in evaluation mode as Evaluate, without labels: *scores is
  // resized to B x eval_task_names().size(), and column i holds eval task i's
  // score of every row, also of the rows Evaluate leaves out of that task
  // (ESMM's pCVR of an unclicked impression). On the rows Evaluate scores,
  // the two give the same values.
  virtual void Predict(const T* params, const Matrix& input, Matrix* scores) = 0;
};

// Builds the model the config names (model.esmm, mmoe, shared_bottom, ple or
// single_task) for input rows laid out as the file comment says, with one
// data label per entry of label_names, through the kind's entry of the
// model-kind registry (worker/models/model_registry.h), whose check it runs
// first. seed starts the dropout masks (the trainer passes train.seed mixed
// with the worker rank). Errors are InvalidArgument naming every field
// ("invalid config: model.ple.num_levels: must be > 0 (got 0)"), or the
// input widths.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateModel(const config::ModelConfig& config,
                                                const ModelInputs& inputs,
                                                const std::vector<std::string>& label_names,
                                                uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_MODEL_H_
