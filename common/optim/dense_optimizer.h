// DenseOptimizer: Adam or Adagrad over one block of dense parameters, with
// the block's optimizer state (moments or accumulator, and the step count).
//
// The servers' dense store runs one per block (ps/table/dense_store.h); a
// worker with train.dense_sync_batches > 1 runs one over its own copy of the
// whole dense parameter array (worker/trainer/trainer.h). Both take the
// config's server.dense_optimizer, so the two apply the same steps.
//
// Thread-safety: none; owned by one thread.
#ifndef MTPS_COMMON_OPTIM_DENSE_OPTIMIZER_H_
#define MTPS_COMMON_OPTIM_DENSE_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "proto/config.pb.h"

namespace mtps {

class DenseOptimizer {
 public:
  enum class Kind { kAdam, kAdagrad };

  // Adam when the config sets none. `optimizer` must have passed the config
  // check (its hyper-parameters in range).
  explicit DenseOptimizer(const config::DenseOptimizer& optimizer);

  Kind kind() const { return kind_; }
  // State vectors per parameter: 2 (Adam's m and v) or 1 (Adagrad's
  // accumulator).
  int num_states() const { return kind_ == Kind::kAdam ? 2 : 1; }

  // The state of n parameters before their first step (Adam: zero moments;
  // Adagrad: the initial accumulator), step count 0.
  void Reset(size_t n);
  // Drops the state (size 0, step count 0).
  void Clear();
  size_t size() const { return state1_.size(); }

  // One step over w[0..size()) with gradients g[0..size()).
  void Step(float* w, const float* g);

  int64_t steps() const { return steps_; }
  // The state, for serialization: state(0) and, for Adam, state(1); a
  // restore writes them (each of size()) and set_steps.
  std::vector<float>& state(int i) { return i == 0 ? state1_ : state2_; }
  const std::vector<float>& state(int i) const { return i == 0 ? state1_ : state2_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  // Constant after construction.
  Kind kind_;
  config::Adam adam_;
  config::Adagrad adagrad_;

  int64_t steps_ = 0;
  // Adam: first and second moments. Adagrad: state1_ is the accumulator and
  // state2_ stays empty.
  std::vector<float> state1_;
  std::vector<float> state2_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_OPTIM_DENSE_OPTIMIZER_H_
