// ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018) and the
// paper's two comparison variants, on the Model<T> interface of
// worker/models/model.h (EsmmConfig.variant).
//
// Two towers: the CTR tower gives the logit a (pCTR = sigmoid(a)), the CVR
// tower the logit c (pCVR = sigmoid(c)), and pCTCVR = pCTR * pCVR.
//   - ESMM: both towers read the whole input row (one embedding group). Both
//     loss terms run over all impressions (mean over the batch): "ctr" =
//     BCE(pCTR, click) and "ctcvr" = BCE(pCTCVR, click AND conversion); pCVR
//     is never fitted on clicked rows alone, which is ESMM's answer to
//     sample-selection bias.
//   - NO_SHARING (ESMM-NS): the same losses, but two embedding groups: the
//     CTR tower reads [group 0 | dense], the CVR tower [group 1 | dense].
//   - NAIVE (the paper's BASE): two groups as NO_SHARING; "ctr" =
//     BCE(pCTR, click) over all impressions, "cvr" = BCE(pCVR, conversion)
//     over the clicked impressions only (their mean; 0 with zero gradient when
//     the batch has no click).
//
// The ctcvr term is computed from the logits, never from the product of
// probabilities, so it stays finite and accurate for any a, c:
//   log pCTCVR     = -softplus(-a) - softplus(-c)
//   log(1-pCTCVR)  = logsumexp(-a, -c, -a-c) - softplus(-a) - softplus(-c)
// (1 - s(a)s(c) = (e^-a + e^-c + e^-a-c) / ((1+e^-a)(1+e^-c))). Its gradient
// d/da = -y s(-a) + (1-y) exp(-softplus(a) + log p - log(1-p)) (and the same
// with a, c swapped) is bounded by 1 in magnitude and evaluated in log space.
//
// Towers: tower_hidden hidden layers (ModelConfig.activation, then dropout in
// training), then a linear layer to the logit. ForwardBackward also accepts
// input_grad == nullptr (skips d loss / d input).
// Parameter layout: the CTR tower's layers, then the CVR tower's (each as
// Mlp in worker/nn/layers.h; tower input width = input_dim for ESMM,
// sparse_width + dense_width for the two-group variants). With
// model.batch_norm every hidden layer has its gamma and beta (width each)
// right after its W and b; logit layers have none. Running state
// (Model::State, batch_norm only): the CTR tower's batch norms, then the CVR
// tower's.
// Output-bias prior: CTR bias from the click rate, CVR bias from the
// conversion rate among clicked rows.
// Evaluation tasks (every variant): "ctr" (every row: pCTR vs click), "cvr"
// (rows with click = 1 only: pCVR vs conversion), "ctcvr" (every row: pCTCVR
// vs click AND conversion).
#ifndef MTPS_WORKER_MODELS_ESMM_H_
#define MTPS_WORKER_MODELS_ESMM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"
#include "worker/models/model.h"

namespace mtps {

// Builds the ESMM variant config.esmm() names. click_label and
// conversion_label must name two different entries of label_names; every
// tower_hidden width must be in [1, 65536]. Errors name the config field
// ("model.esmm.click_label ..."). seed starts the dropout masks.
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateEsmm(const config::ModelConfig& config,
                                               const ModelInputs& inputs,
                                               const std::vector<std::string>& label_names,
                                               uint64_t seed);

}  // namespace mtps

#endif  // MTPS_WORKER_MODELS_ESMM_H_
