// Model: the dense multi-task part of a recommendation model, run on a worker.
//
// A model owns no parameters: they live in one flat array (pulled from the
// parameter servers, split over them in contiguous blocks), and the model
// reads it and writes gradients of the same layout. Models are templated on
// the scalar so the gradient checks run in double; training uses float.
// A Model keeps activation workspaces between calls, so it is not
// thread-safe; use one per thread.
#ifndef MTPS_WORKER_MODEL_H_
#define MTPS_WORKER_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/eigen.h"

#include "common/status.h"
#include "proto/config.pb.h"

namespace mtps {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Scores and labels of one evaluation task, for the examples it is evaluated on.
struct EvalColumn {
  std::string task;
  std::vector<float> scores;
  std::vector<float> labels;
};

template <typename T>
class Model {
 public:
  using Matrix = RowMatrix<T>;
  virtual ~Model() = default;

  // Length of the flat parameter array.
  virtual int64_t num_params() const = 0;
  // Width of an input row: pooled embeddings of every slot, then dense features.
  virtual int input_dim() const = 0;
  // Names of the loss terms, in the order ForwardBackward reports them.
  virtual const std::vector<std::string>& loss_names() const = 0;
  // Names of the evaluation tasks, in the order Evaluate appends them.
  virtual const std::vector<std::string>& eval_task_names() const = 0;

  // Fills params[0..num_params) deterministically from seed.
  virtual void InitParams(uint64_t seed, T* params) const = 0;

  // Forward and backward over a batch. input is B x input_dim(); labels is
  // B x (number of data labels), in FeatureSchema::label_names order.
  // Loss is the sum of the loss terms, each the mean over the batch.
  // Overwrites param_grad[0..num_params) with d loss / d params and
  // *input_grad with d loss / d input (B x input_dim). Writes each term's
  // mean loss into *losses.
  virtual void ForwardBackward(const T* params, const Matrix& input, const Matrix& labels,
                               T* param_grad, Matrix* input_grad, std::vector<T>* losses) = 0;

  // Forward only; appends to (*out)[i] the scores and labels of eval task i
  // for the examples that task is evaluated on. *out is resized to the
  // number of eval tasks if empty.
  virtual void Evaluate(const T* params, const Matrix& input, const Matrix& labels,
                        std::vector<EvalColumn>* out) = 0;
};

// Builds the model the config names (ESMM or MMOE) for inputs of
// input_dim columns and the given data label names. Errors name the field.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateModel(const config::ModelConfig& config, int input_dim,
                                                const std::vector<std::string>& label_names);

}  // namespace mtps

#endif  // MTPS_WORKER_MODEL_H_
