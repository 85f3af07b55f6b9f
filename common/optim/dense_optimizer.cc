// DenseOptimizer: Adam or Adagrad steps over a dense block (see
// common/optim/dense_optimizer.h).
#include "common/optim/dense_optimizer.h"

#include "common/optim/optimizer.h"

namespace mtps {

DenseOptimizer::DenseOptimizer(const config::DenseOptimizer& optimizer)
    : kind_(optimizer.has_adagrad() ? Kind::kAdagrad : Kind::kAdam),
      adam_(optimizer.adam()),
      adagrad_(optimizer.adagrad()) {}

void DenseOptimizer::Reset(size_t n) {
  steps_ = 0;
  if (kind_ == Kind::kAdam) {
    state1_.assign(n, 0.0f);
    state2_.assign(n, 0.0f);
  } else {
    state1_.assign(n, adagrad_.initial_accumulator());
    state2_.clear();
  }
}

void DenseOptimizer::Clear() {
  steps_ = 0;
  state1_.clear();
  state1_.shrink_to_fit();
  state2_.clear();
  state2_.shrink_to_fit();
}

void DenseOptimizer::Step(float* w, const float* g) {
  const size_t n = state1_.size();
  ++steps_;
  if (kind_ == Kind::kAdam) {
    const AdamStep step = MakeAdamStep(adam_.learning_rate(), adam_.beta1(), adam_.beta2(), steps_);
    AdamUpdate(w, state1_.data(), state2_.data(), g, n, adam_.beta1(), adam_.beta2(),
               adam_.epsilon(), step);
  } else {
    AdagradUpdate(w, state1_.data(), g, n, adagrad_.learning_rate());
  }
}

}  // namespace mtps
