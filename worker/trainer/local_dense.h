// LocalDense: a worker's own steps of the dense parameters, synced with the
// servers' copy every few batches (train.dense_sync_batches > 1; Downpour
// SGD's local steps).
//
// The worker steps its parameters with the config's dense optimizer after
// every batch (Step). A sync pushes the change the steps made since the
// previous sync (TakeChange), which the servers add to their copy; a pull
// sent after it brings the servers' copy back, with every worker's changes,
// and Merge puts this worker's steps since the push on top of it. A change
// pushed while a pull is on its way is not in that pull's answer; Merge adds
// it back, so no step of this worker is ever dropped or counted twice.
//
// Thread-safety: none; owned by the worker's training thread.
#ifndef MTPS_WORKER_TRAINER_LOCAL_DENSE_H_
#define MTPS_WORKER_TRAINER_LOCAL_DENSE_H_

#include <cstddef>
#include <vector>

#include "common/optim/dense_optimizer.h"
#include "proto/config.pb.h"

namespace mtps {

class LocalDense {
 public:
  // n dense parameters stepped with `optimizer` (a checked config's).
  LocalDense(const config::DenseOptimizer& optimizer, size_t n);

  // One optimizer step of params[0..n) with grads[0..n).
  void Step(float* params, const float* grads);

  // The change of params since the previous TakeChange (or the first pull),
  // to push now; valid until the next call.
  const float* TakeChange(const float* params);

  // A pull of the servers' copy was sent (after every push it must see).
  void PullSent();

  // The answer of the pull last sent: params becomes the servers' copy plus
  // what this worker pushed after the pull was sent plus its steps since
  // its latest push. The first merge takes `pulled` as it is.
  void Merge(float* params, const float* pulled);

  size_t size() const { return n_; }

 private:
  size_t n_;
  DenseOptimizer optimizer_;
  // The servers' copy as of the latest merged pull, plus every change this
  // worker pushed since: params - ref_ is what the next push carries.
  std::vector<float> ref_;
  std::vector<float> change_;
  // Changes pushed since the pull last sent (its answer lacks them).
  std::vector<float> pushed_since_pull_;
  bool merged_ = false;
  bool pull_in_flight_ = false;
};

}  // namespace mtps

#endif  // MTPS_WORKER_TRAINER_LOCAL_DENSE_H_
