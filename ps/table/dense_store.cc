// DenseStore: Init-once dense parameter block with an Adam or Adagrad step.
#include "ps/table/dense_store.h"

#include <cmath>
#include <string>

#include <glog/logging.h>

#include "common/config/config_check.h"
#include "ps/table/optimizer.h"
#include "ps/table/table_config.h"

namespace mtps {

Status ValidateDenseOptimizer(const config::DenseOptimizer& optimizer) {
  ConfigProblems problems;
  CheckDenseOptimizer(optimizer, "", &problems);
  return problems.ToStatus("dense optimizer");
}

DenseStore::DenseStore(const config::DenseOptimizer& optimizer)
    : kind_(optimizer.has_adagrad() ? Kind::kAdagrad : Kind::kAdam),
      adam_(optimizer.adam()),
      adagrad_(optimizer.adagrad()) {
  const Status valid = ValidateDenseOptimizer(optimizer);
  CHECK(valid.ok()) << valid;
}

bool DenseStore::Init(const float* values, size_t n) {
  if (initialized_) return false;
  values_.assign(values, values + n);
  if (kind_ == Kind::kAdam) {
    state1_.assign(n, 0.0f);
    state2_.assign(n, 0.0f);
  } else {
    state1_.assign(n, adagrad_.initial_accumulator());
  }
  initialized_ = true;
  return true;
}

Status DenseStore::Push(const float* grads, size_t n) {
  if (!initialized_) {
    return Status::InvalidArgument("dense push of " + std::to_string(n) +
                                   " gradients before the block was initialized (size 0)");
  }
  if (n != values_.size()) {
    return Status::InvalidArgument("dense push of " + std::to_string(n) +
                                   " gradients to a block of " + std::to_string(values_.size()) +
                                   " parameters");
  }
  ++steps_;
  if (kind_ == Kind::kAdam) {
    const AdamStep step = MakeAdamStep(adam_.learning_rate(), adam_.beta1(), adam_.beta2(), steps_);
    AdamUpdate(values_.data(), state1_.data(), state2_.data(), grads, n, adam_.beta1(),
               adam_.beta2(), adam_.epsilon(), step);
  } else {
    AdagradUpdate(values_.data(), state1_.data(), grads, n, adagrad_.learning_rate());
  }
  return Status::OK();
}

}  // namespace mtps
