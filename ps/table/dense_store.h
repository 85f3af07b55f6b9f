// DenseStore: one parameter server's contiguous block of the dense (tower)
// parameters and the optimizer state of that block.
//
// Workers initialise the block once (the first INIT_DENSE wins, so every
// worker may send its own copy of the deterministic initial values) and then
// push gradients of the whole block; each push is one optimizer step. The
// optimizer is Adam (also when the config sets none) or Adagrad
// (common/optim/dense_optimizer.h). In Mode::kAddChanges (a job with
// train.dense_sync_batches > 1, whose workers step their own copies) a push
// carries the change a worker's local steps made, added as it is.
//
// Thread-safety: none. A DenseStore is owned by one server thread and takes no
// locks; values() is valid until the next Init or Push on that thread.
#ifndef MTPS_PS_TABLE_DENSE_STORE_H_
#define MTPS_PS_TABLE_DENSE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/optim/dense_optimizer.h"
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
  enum class Mode {
    kOptimize,    // a push is gradients: one optimizer step
    kAddChanges,  // a push is a change to add (the workers' local steps)
  };
  explicit DenseStore(const config::DenseOptimizer& optimizer, Mode mode = Mode::kOptimize);
  // The mode of a job's dense blocks: kAddChanges when its workers step
  // the dense parameters themselves (train.dense_sync_batches > 1).
  static Mode ModeOf(const config::Config& config);

  // First call wins: copies values[0..n) and returns true; later calls change
  // nothing and return false.
  bool Init(const float* values, size_t n);
  bool initialized() const { return initialized_; }
  size_t size() const { return values_.size(); }
  const float* values() const { return values_.data(); }

  // Applies one optimizer step with grads[0..n) (kAddChanges: adds them).
  // n != size() or not initialized -> InvalidArgument naming both.
  Status Push(const float* grads, size_t n);

  // Pushes applied so far (kOptimize: Adam's t).
  int64_t steps() const { return steps_; }

  // The block, its optimizer state, step count and initialized flag,
  // serialized (magic "MTPSDENS", version 1). Small (the dense towers): a
  // plain copy. The format, little-endian, no padding:
  //   offset  0  char[8] "MTPSDENS"
  //           8  u32 version (1)
  //          12  u32 optimizer kind: 1 Adagrad, 2 Adam (as in MTPSROWS), 3
  //              changes added (Mode::kAddChanges)
  //          16  u32 state vectors S: 1 (Adagrad's accumulator), 2 (Adam's
  //              m, v), 0 (kind 3)
  //          20  u32 initialized (0 or 1)
  //          24  i64 steps
  //          32  u64 parameters n (0 when not initialized)
  //          40  n f32 values, then S times n f32 state
  //              u64 SnapshotChecksum (ps/table/sparse_table.h) of every byte before it
  std::string Serialize() const;
  // Replaces the store's content with Serialize()'s bytes; the optimizer kind
  // must match (Adam or Adagrad), the mode need not: a block of added
  // changes restored into kOptimize starts the optimizer state afresh, a
  // stepped block restored into kAddChanges drops it (a job resumed with
  // another train.dense_sync_batches) (InvalidArgument otherwise). Malformed, truncated or
  // checksum-failing input is Corruption. Every error message starts with
  // `where` (e.g. a file name) and says why; the store is then left
  // uninitialized (steps 0). Never crashes on hostile bytes, and allocates
  // no more than `size` bytes.
  Status Restore(const char* data, size_t size, const std::string& where);

 private:
  // Restore's work; errors leave the store partly loaded.
  Status RestoreChecked(const char* data, size_t size);
  // Uninitialized, no steps.
  void Clear();

  // The kind code of the serialized form (1 Adagrad, 2 Adam, 3 changes added).
  uint32_t KindCode() const;
  // The state vectors of that form.
  uint32_t NumStates() const;

  const Mode mode_;
  bool initialized_ = false;
  int64_t steps_ = 0;
  std::vector<float> values_;
  // The state of kOptimize's steps (empty in kAddChanges); in kOptimize its
  // step count equals steps_.
  DenseOptimizer optimizer_;
};

}  // namespace mtps

#endif  // MTPS_PS_TABLE_DENSE_STORE_H_
