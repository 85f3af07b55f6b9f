// A single-task baseline on the Model<T> interface of worker/models/model.h: one
// MLP predicting one data label.
//
// The MLP reads the input row (hidden widths, each layer followed by
// ModelConfig.activation and, in training, dropout; then a linear layer to
// one logit); score = sigmoid(logit). Loss term and evaluation task are both
// named after `label`. Without `only_where` the loss is the mean BCE over the
// batch and every row is evaluated. With `only_where` (another data label),
// only rows whose only_where label is 1 count: the loss is the mean BCE over
// them (0 with zero gradient when the batch has none; other rows get zero
// input gradient), and only they are evaluated. One embedding group.
// Output-bias prior: the label's rate over all rows, or over the only_where
// rows.
//
// ForwardBackward also accepts input_grad == nullptr.
// Parameter layout: the MLP (as Mlp in worker/nn/layers.h). With
// model.batch_norm every hidden layer has its gamma and beta (width each)
// right after its W and b; the logit layer has none. Running state
// (Model::State, batch_norm only): the MLP's batch norms in layout order.
#ifndef MTPS_WORKER_MODELS_SINGLE_TASK_H_
#define MTPS_WORKER_MODELS_SINGLE_TASK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// Builds a single-task model (config.single_task()) for inputs.sparse_width +
// dense_width input columns. label (and only_where, when set) must name
// entries of label_names, and differ; every hidden width in [1, 65536].
// Errors name the field ("model.single_task.label ..."). seed starts the
// dropout masks.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateSingleTask(const config::ModelConfig& config,
                                                     const ModelInputs& inputs,
                                                     const std::vector<std::string>& label_names,
                                                     uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_SINGLE_TASK_H_
