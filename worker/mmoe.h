// MMOE (Ma et al., "Multi-gate Mixture-of-Experts", KDD 2018) on the Model<T>
// interface of worker/model.h.
//
// num_experts expert MLPs read the input row (ReLU after every expert layer,
// including the last, whose width is the expert output width h). Each task k
// has a gate, softmax(x G_k + g_k) over the experts, and its tower reads the
// gate-weighted sum of the expert outputs (B x h) and ends in one logit;
// score = sigmoid(logit). There is one task per data label, named after it.
// Loss = sum over tasks of the mean BCE of that task (terms named after the
// labels). Every task is evaluated on every row.
//
// ForwardBackward also accepts input_grad == nullptr (skips d loss / d input).
// Parameter layout: experts 0..E-1, then gates 0..K-1, then towers 0..K-1.
#ifndef MTPS_WORKER_MMOE_H_
#define MTPS_WORKER_MMOE_H_

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/config.pb.h"
#include "worker/model.h"

namespace mtps {

// Builds an MMOE for input rows of input_dim columns with one task per entry
// of label_names (non-empty, distinct). num_experts must be in [1, 1024],
// expert_hidden non-empty, every width in [1, 65536]. Errors name the config
// field ("model.mmoe.num_experts must be > 0").
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateMmoe(const config::MmoeConfig& config, int input_dim,
                                               const std::vector<std::string>& label_names);

}  // namespace mtps

#endif  // MTPS_WORKER_MMOE_H_
