// PLE (Tang et al., "Progressive Layered Extraction", RecSys 2020): multi-level
// Customized Gate Control on the Model<T> interface of worker/models/model.h.
//
// K tasks (one per data label, named after it), L = num_levels extraction
// levels. Level l has, for each task k, task_experts experts E(l,k,j), and
// shared_experts shared experts S(l,j); every expert is an MLP (expert_hidden
// widths, each layer followed by ModelConfig.activation and, in training,
// dropout; output width h = the last width).
//   - Inputs: at level 0 every expert and gate reads the input row. At level
//     l > 0, task k's experts and gate read task k's output of level l-1, and
//     the shared experts and shared gate read the shared output of level l-1.
//   - Task k's output at level l: softmax(x G(l,k) + g(l,k)) over
//     [E(l,k,0..te-1), S(l,0..se-1)] (that order), mixing their outputs
//     (B x h); x = task k's input at level l.
//   - Below the top level, when shared_experts > 0, the shared output: a
//     shared gate softmax(x G(l,s) + g(l,s)) over ALL experts of the level
//     [E(l,0,..), E(l,1,..), ..., E(l,K-1,..), S(l,..)], x = the shared input.
//   - Tower k (tower_hidden hidden layers as the experts', then a linear
//     layer to one logit) reads task k's output of the top level;
//     score = sigmoid(logit).
// Loss = sum over tasks of the mean BCE of that task (terms named after the
// labels); every task is evaluated on every row. One embedding group.
// Output-bias prior: each task's rate over all rows.
//
// ForwardBackward also accepts input_grad == nullptr.
// Parameter layout, level by level: the experts E(l,0,0..te-1), ...,
// E(l,K-1,..), S(l,0..se-1) (each as Mlp in worker/nn/layers.h), then the task
// gates G(l,0..K-1) (Linear in x (te+se)), then the shared gate G(l,s)
// (Linear in x (K*te+se), only below the top level and when se > 0); after
// the last level, towers 0..K-1. With model.batch_norm every hidden layer of
// an expert or tower has its gamma and beta (width each) right after its W
// and b; gates and logit layers have none. Running state (Model::State,
// batch_norm only): the experts' batch norms level by level, then the
// towers', in layout order.
#ifndef MTPS_WORKER_MODELS_PLE_H_
#define MTPS_WORKER_MODELS_PLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// Builds a PLE (config.ple()) for inputs.sparse_width + dense_width input
// columns with one task per entry of label_names (non-empty, distinct).
// num_levels in [1, 16]; task_experts and shared_experts in [0, 1024], not
// both 0; expert_hidden non-empty; every width in [1, 65536]. Errors name the
// field ("model.ple.num_levels must be > 0"). seed starts the dropout masks.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreatePle(const config::ModelConfig& config,
                                              const ModelInputs& inputs,
                                              const std::vector<std::string>& label_names,
                                              uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_PLE_H_
