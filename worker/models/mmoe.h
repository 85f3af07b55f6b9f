// MMOE (Ma et al., "Multi-gate Mixture-of-Experts", KDD 2018) on the Model<T>
// interface of worker/models/model.h.
//
// num_experts expert MLPs read the input row (ModelConfig.activation, then
// dropout in training, after every expert layer, including the last, whose
// width is the expert output width h). Each task k has a gate, softmax(x G_k +
// g_k) over the experts, and its tower (hidden layers as the experts', then a
// linear layer to one logit) reads the gate-weighted sum of the expert
// outputs (B x h); score = sigmoid(logit). There is one task per data label,
// named after it. Loss = sum over tasks of the mean BCE of that task (terms
// named after the labels). Every task is evaluated on every row. One
// embedding group. Output-bias prior: each task's rate over all rows.
//
// ForwardBackward also accepts input_grad == nullptr (skips d loss / d input).
// Parameter layout: experts 0..E-1, then gates 0..K-1 (Linear in x E), then
// towers 0..K-1 (experts and towers as Mlp in worker/nn/layers.h). With
// model.batch_norm every hidden layer of an expert or tower has its gamma and
// beta (width each) right after its W and b; gates and logit layers have none.
// Running state (Model::State, batch_norm only): the experts' batch norms,
// then the towers', in layout order.
#ifndef MTPS_WORKER_MODELS_MMOE_H_
#define MTPS_WORKER_MODELS_MMOE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// Builds an MMOE (config.mmoe()) for inputs.sparse_width + dense_width
// input columns with one task per entry of label_names (non-empty,
// distinct). num_experts must be in [1, 1024], expert_hidden non-empty,
// every width in [1, 65536]. Errors name the config field
// ("model.mmoe.num_experts must be > 0"). seed starts the dropout masks.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateMmoe(const config::ModelConfig& config,
                                               const ModelInputs& inputs,
                                               const std::vector<std::string>& label_names,
                                               uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_MMOE_H_
