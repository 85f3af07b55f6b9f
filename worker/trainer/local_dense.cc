// A worker's local dense steps and their syncs (see
// worker/trainer/local_dense.h).
#include "worker/trainer/local_dense.h"

#include <algorithm>

namespace mtps {

LocalDense::LocalDense(const config::DenseOptimizer& optimizer, size_t n)
    : n_(n), optimizer_(optimizer), ref_(n, 0.0f), change_(n, 0.0f), pushed_since_pull_(n, 0.0f) {
  optimizer_.Reset(n);
}

void LocalDense::Step(float* params, const float* grads) { optimizer_.Step(params, grads); }

const float* LocalDense::TakeChange(const float* params) {
  float* __restrict change = change_.data();
  float* __restrict ref = ref_.data();
  for (size_t i = 0; i < n_; ++i) {
    change[i] = params[i] - ref[i];
    ref[i] = params[i];
  }
  if (pull_in_flight_) {
    float* __restrict since = pushed_since_pull_.data();
    for (size_t i = 0; i < n_; ++i) since[i] += change[i];
  }
  return change_.data();
}

void LocalDense::PullSent() {
  // A pull still unanswered is superseded: the new one sees all it would.
  std::fill(pushed_since_pull_.begin(), pushed_since_pull_.end(), 0.0f);
  pull_in_flight_ = true;
}

void LocalDense::Merge(float* params, const float* pulled) {
  pull_in_flight_ = false;
  if (!merged_) {
    // The first pull: nothing stepped here yet.
    std::copy(pulled, pulled + n_, params);
    std::copy(pulled, pulled + n_, ref_.begin());
    merged_ = true;
    return;
  }
  float* __restrict ref = ref_.data();
  const float* __restrict since = pushed_since_pull_.data();
  for (size_t i = 0; i < n_; ++i) {
    const float servers = pulled[i] + since[i];
    params[i] += servers - ref[i];
    ref[i] = servers;
  }
}

}  // namespace mtps
