// ESMM (Ma et al., "Entire Space Multi-Task Model", SIGIR 2018) on the
// Model<T> interface of worker/model.h.
//
// Two towers read the same input row: the CTR tower gives the logit a
// (pCTR = sigmoid(a)), the CVR tower the logit c (pCVR = sigmoid(c)), and
// pCTCVR = pCTR * pCVR. Both loss terms run over all impressions (mean over
// the batch): "ctr" = BCE(pCTR, click) and "ctcvr" = BCE(pCTCVR, click AND
// conversion); pCVR is never fitted on clicked rows alone, which is ESMM's
// answer to sample-selection bias.
//
// The ctcvr term is computed from the logits, never from the product of
// probabilities, so it stays finite and accurate for any a, c:
//   log pCTCVR     = -softplus(-a) - softplus(-c)
//   log(1-pCTCVR)  = logsumexp(-a, -c, -a-c) - softplus(-a) - softplus(-c)
// (1 - s(a)s(c) = (e^-a + e^-c + e^-a-c) / ((1+e^-a)(1+e^-c))). Its gradient
// d/da = -y s(-a) + (1-y) exp(-softplus(a) + log p - log(1-p)) (and the same
// with a, c swapped) is bounded by 1 in magnitude and evaluated in log space.
//
// ForwardBackward also accepts input_grad == nullptr (skips d loss / d input).
// Parameter layout: the CTR tower's layers, then the CVR tower's.
// Evaluation tasks: "ctr" (every row: pCTR vs click), "cvr" (rows with
// click = 1 only: pCVR vs conversion), "ctcvr" (every row: pCTCVR vs click AND
// conversion).
#ifndef MTPS_WORKER_ESMM_H_
#define MTPS_WORKER_ESMM_H_

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proto/config.pb.h"
#include "worker/model.h"

namespace mtps {

// Builds an ESMM for input rows of input_dim columns. click_label and
// conversion_label must name two different entries of label_names; every
// tower_hidden width must be in [1, 65536]. Errors name the config field
// ("model.esmm.click_label ...").
template <typename T>
StatusOr<std::unique_ptr<Model<T>>> CreateEsmm(const config::EsmmConfig& config, int input_dim,
                                               const std::vector<std::string>& label_names);

}  // namespace mtps

#endif  // MTPS_WORKER_ESMM_H_
