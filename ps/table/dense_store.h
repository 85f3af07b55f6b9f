// DenseStore: one parameter server's contiguous block of the dense (tower)
// parameters and the optimizer state of that block.
//
// Workers initialise the block once (the first INIT_DENSE wins, so every
// worker may send its own copy of the deterministic initial values) and then
// push gradients of the whole block; each push is one optimizer step. The
// optimizer is Adam (also when the config sets none) or Adagrad.
//
// Thread-safety: none. A DenseStore is owned by one server thread and takes no
// locks; values() is valid until the next Init or Push on that thread.
#ifndef MTPS_PS_TABLE_DENSE_STORE_H_
#define MTPS_PS_TABLE_DENSE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/base/status.h"
#include "proto/config.pb.h"

namespace mtps {

// Checks an optimizer read from a config with CheckDenseOptimizer
// (ps/table/table_config.h, the rules the config check runs too), naming
// every offending field ("dense optimizer: adam.beta1: must be in [0, 1)").
// The DenseStore constructor CHECKs the same, so call this first on outside
// input.
Status ValidateDenseOptimizer(const config::DenseOptimizer& optimizer);

class DenseStore {
 public:
  // adam (default if unset) or adagrad; must satisfy ValidateDenseOptimizer
  // (CHECKed).
  explicit DenseStore(const config::DenseOptimizer& optimizer);

  // First call wins: copies values[0..n) and returns true; later calls change
  // nothing and return false.
  bool Init(const float* values, size_t n);
  bool initialized() const { return initialized_; }
  size_t size() const { return values_.size(); }
  const float* values() const { return values_.data(); }

  // Applies one optimizer step with grads[0..n). n != size() or not
  // initialized -> InvalidArgument naming both.
  Status Push(const float* grads, size_t n);

  // Optimizer steps applied so far (Adam's t).
  int64_t steps() const { return steps_; }

 private:
  enum class Kind { kAdam, kAdagrad };

  // Constant after construction.
  Kind kind_;
  config::Adam adam_;
  config::Adagrad adagrad_;

  bool initialized_ = false;
  int64_t steps_ = 0;
  std::vector<float> values_;
  // Adam: first and second moments. Adagrad: state1_ is the accumulator and
  // state2_ stays empty.
  std::vector<float> state1_;
  std::vector<float> state2_;
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_DENSE_STORE_H_
