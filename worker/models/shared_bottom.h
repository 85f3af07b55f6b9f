// Shared-Bottom (Caruana 1997, "Multitask Learning") on the Model<T>
// interface of worker/models/model.h.
//
// One bottom MLP reads the input row (bottom_hidden widths, each layer
// followed by ModelConfig.activation and, in training, dropout; the last
// width is the bottom's output width h). One tower per task reads the
// bottom's output (tower_hidden hidden layers as the bottom's, then a linear
// layer to one logit); score = sigmoid(logit). One task per data label, named
// after it. Loss = sum over tasks of the mean BCE of that task (terms named
// after the labels); every task is evaluated on every row. One embedding
// group. Output-bias prior: each task's rate over all rows.
//
// ForwardBackward also accepts input_grad == nullptr.
// Parameter layout: the bottom, then towers 0..K-1 (each as Mlp in
// worker/nn/layers.h). With model.batch_norm every hidden layer has its gamma
// and beta (width each) right after its W and b; logit layers have none.
// Running state (Model::State, batch_norm only): the bottom's batch norms,
// then the towers', in layout order.
#ifndef MTPS_WORKER_MODELS_SHARED_BOTTOM_H_
#define MTPS_WORKER_MODELS_SHARED_BOTTOM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// Builds a Shared-Bottom model (config.shared_bottom()) for
// inputs.sparse_width + dense_width input columns, one task per entry of
// label_names (non-empty, distinct). bottom_hidden must be non-empty; every
// width in [1, 65536]. Errors name the field
// ("model.shared_bottom.bottom_hidden ..."). seed starts the dropout masks.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateSharedBottom(const config::ModelConfig& config,
                                                       const ModelInputs& inputs,
                                                       const std::vector<std::string>& label_names,
                                                       uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_SHARED_BOTTOM_H_
