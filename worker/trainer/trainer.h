// Trainer: a worker process's job — train on its share of the data, then
// score its share of the held-out data and report to the scheduler.
//
// Per batch: de-duplicate the batch's keys, pull their rows and the dense
// parameters once (every request in flight together), pool embeddings, run
// the model's forward and backward on Eigen, sum gradients per unique key,
// push asynchronously. Rank 0 initialises the dense parameters on the servers
// before the start barrier. Owned by the worker's main thread.
//
// With train.dense_sync_batches K > 1 the worker steps its own copy of the
// dense parameters after every batch and syncs it with the servers' every K
// batches (worker/trainer/local_dense.h): the batch that syncs pushes the
// change since the previous sync, and the next batch staged after it pulls
// the servers' copy, on which the worker keeps its own steps since.
//
// Checkpoints (ps/scheduler/checkpointer.h): when the scheduler asks for one,
// the trainer pauses at its next batch boundary with every push
// acknowledged, sends its WorkerState (the epoch and the number of that
// epoch's examples trained, batches, model state) and waits to be released.
// A resumed worker (ClusterMember::resuming) restores that state, skips the
// examples already trained and goes on, so no example is skipped or trained
// twice.
//
// Metrics (common/metrics/metrics.h): the trainer keeps the worker's own —
// examples trained and their rate, the epoch, per-task training loss and
// running AUC (of each batch's predictions before its update, over the
// latest RunningAuc::kDefaultWindow examples), the KvClient's pull and push
// round trips, malformed lines skipped, resident memory — and every
// heartbeat carries their snapshot to the scheduler.
#ifndef MTPS_WORKER_TRAINER_TRAINER_H_
#define MTPS_WORKER_TRAINER_TRAINER_H_

#include <memory>
#include <vector>

#include "common/base/status.h"
#include "common/cluster/cluster_member.h"
#include "common/eval/running_auc.h"
#include "common/metrics/metrics.h"
#include "worker/client/kv_client.h"
#include "worker/data/bad_line_budget.h"
#include "worker/data/example.h"
#include "worker/models/model.h"
#include "worker/nn/embedding_bag.h"
#include "worker/trainer/local_dense.h"

namespace mtps {

// See the file comment. Created and run by mtps-node's worker main thread,
// the only thread that calls it.
class Trainer {
 public:
  // `member` has joined the job and outlives the trainer.
  // `default_compute_threads` (>= 1) is the towers' thread count when the
  // config's train.compute_threads is 0 (mtps-node works it out from its
  // flags and the cores it may run on).
  explicit Trainer(ClusterMember* member, int default_compute_threads = 1);
  // Stops listening for partition moves (the member outlives the trainer).
  ~Trainer();

  // Runs the whole job on this worker: start barrier, epochs, the "trained"
  // barrier, evaluation, the report, the "end" barrier.
  Status Run();

 private:
  Status Setup();
  Status TrainEpochs();
  // One batch on its way through the worker: its keys, and their rows in
  // flight or arrived.
  struct StagedBatch {
    Batch batch;
    Batch grouped;  // batch with its slots replicated per embedding group
    std::vector<uint64_t> unique_keys;
    std::vector<uint32_t> key_index;
    PendingPull pull;
    bool pull_dense = false;
    bool merge_dense = false;  // the dense pull is a sync's (local dense steps)
    bool pulled = false;       // FinishBatch already ran (before a checkpoint)
    int epoch = 0;             // the epoch it was read in
    const Batch& view(int groups) const { return groups > 1 ? grouped : batch; }
  };
  // Starts pulling what staged->batch needs (rows of its keys in every
  // embedding group, and the dense parameters when pull_dense; with local
  // dense steps a training batch pulls them only after a sync).
  // training=false answers unseen keys without creating rows.
  Status StageBatch(StagedBatch* staged, bool training, bool pull_dense);
  // Waits for the staged pull and fills input_ and labels_.
  Status FinishBatch(StagedBatch* staged);
  // Forward, backward and push of a finished batch. With local dense steps
  // the worker steps its dense parameters, and pushes their change since the
  // previous sync when `sync_dense`.
  Status TrainStaged(StagedBatch* staged, bool sync_dense);
  // After the backward pass: a NaN or infinite loss or gradient fails the
  // job naming the batch and task (server.nonfinite_gradients: REJECT), or
  // is logged and pushed for the servers to filter (SKIP_ROWS).
  Status CheckFinite(const StagedBatch& staged);
  // Labels of the start of this worker's training share (output-bias prior).
  StatusOr<RowMatrix<float>> SampleLabels();
  Status Evaluate();
  Status MaybeReportProgress(bool force);
  // Consistency control: before batch number started_, waits (when the
  // config bounds staleness) until the slowest worker's clock allows it.
  Status WaitForTurn();
  // Tells the scheduler this worker's clock when it moved (async).
  Status MaybeReportClock();
  // This worker's clock: batches whose pushes every server acknowledged,
  // counted over the whole job (earlier attempts included).
  int64_t clock() const { return clock_base_ + kv_->acked_pushes(); }
  // Takes part in a requested checkpoint, if any: finishes the pull of
  // `in_flight` (may be null), waits for every push, reports and waits.
  Status MaybeCheckpoint(StagedBatch* in_flight);
  // The checkpoint.WorkerState of this worker now, serialized.
  std::string WorkerStateBytes(bool finished) const;
  // Restores a resumed worker's state (before training).
  Status RestoreState();
  // Sends the clock report that leaves the consistency bound.
  Status ReportFinished();
  // Creates the worker's metrics (after Setup made the model and client).
  void SetupMetrics();
  // Brings the metrics read at snapshot time up to date (memory, bad lines).
  void UpdateMetrics();
  // This batch's predictions into the running AUCs.
  void RecordTrainingScores();

  ClusterMember* member_;
  const config::Config& config_;
  int default_compute_threads_;
  // The worker's data error budget (data.max_bad_lines), shared by its
  // training and test readers; its count goes into the evaluation report.
  std::shared_ptr<BadLineBudget> bad_lines_;
  int rank_ = 0;
  int num_workers_ = 1;
  FeatureSchema schema_;
  std::unique_ptr<Model<float>> model_;
  std::unique_ptr<KvClient> kv_;
  int dim_ = 0;
  int groups_ = 1;                     // model_->embedding_groups()
  std::vector<SlotInfo> model_slots_;  // schema_.slots, once per group

  // Buffers reused across batches. The model reads and writes the parameter
  // arrays through Eigen maps at fixed offsets; Eigen's vectorised loops peel
  // a number of scalar elements that depends on a map's address, and its
  // scalar and packet paths round differently. Aligned to Eigen's packet
  // size, the arrays give the same results wherever the heap puts them (with
  // plain vectors, a change of glibc's malloc tunables moved the census
  // single-task logloss in its 4th digit).
  using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;
  AlignedFloats params_, param_grad_;
  StagedBatch staged_[2];  // the batch computing and the one prefetching
  AlignedFloats emb_, emb_grad_;
  KeyDeduper deduper_;  // UniqueKeys of every batch, reusing its table
  RowMatrix<float> input_, input_grad_, labels_;
  std::vector<float> losses_;

  // Checkpoints and resume.
  uint64_t checkpoint_done_ = 0;  // the newest checkpoint taken part in
  int64_t clock_base_ = 0;        // batches acknowledged in earlier attempts
  int trained_epoch_ = 0;         // epoch of the next example to train
  int64_t trained_in_epoch_ = 0;  // examples of trained_epoch_ trained
  int64_t skip_examples_ = 0;     // resumed: examples of trained_epoch_ to skip
  bool finished_before_ = false;  // resumed after this worker's training ended
  double seconds_before_ = 0;     // training seconds of earlier attempts
  uint64_t dropout_seed_ = 0;
  std::vector<uint64_t> push_keys_;  // unique keys + train.counter_key

  // Local dense steps (train.dense_sync_batches > 1; see the file comment).
  int dense_sync_batches_ = 1;
  std::unique_ptr<LocalDense> local_dense_;  // null: the servers step them
  AlignedFloats dense_pulled_;               // a sync pull's answer
  bool dense_pull_due_ = true;               // the next training batch staged pulls the dense copy
  bool dense_unsynced_ = false;              // local steps since the latest sync push
  bool dense_grad_finite_ = true;  // CheckFinite's finding on the latest batch's param_grad_

  // Consistency control.
  int64_t started_ = 0;          // training batches started
  int64_t known_min_clock_ = 0;  // the slowest worker's clock, as last heard
  int64_t reported_clock_ = -1;
  bool clock_report_in_flight_ = false;

  // Progress.
  SteadyClock::time_point train_start_;
  SteadyClock::time_point last_report_;
  int64_t examples_ = 0;
  std::vector<double> loss_sum_;
  int64_t loss_batches_ = 0;
  int64_t nonfinite_batches_ = 0;  // SKIP_ROWS: batches pushed with non-finite values
  std::vector<EvalColumn> eval_;
  // Examples of one epoch of this worker's share (-1: no whole epoch read yet).
  int64_t examples_per_epoch_ = -1;
  bool training_done_ = false;  // TrainEpochs left its loop
  int64_t last_report_examples_ = 0;
  std::vector<RunningAuc> running_auc_;   // per loss term
  std::vector<EvalColumn> train_scores_;  // per loss term, the latest batch's

  // Metrics (see the file comment); the registry outlives the pointers.
  MetricRegistry metrics_;
  Counter* examples_metric_ = nullptr;
  Gauge* examples_per_sec_metric_ = nullptr;
  Gauge* epoch_metric_ = nullptr;
  std::vector<Gauge*> loss_metrics_, auc_metrics_;  // per loss term
  Counter* bad_lines_metric_ = nullptr;
  int64_t bad_lines_exported_ = 0;
  Gauge* memory_metric_ = nullptr;
  // Expires with the trainer; its callbacks left in the member's Rpc (the
  // clock report's) check it before touching the trainer.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace mtps

#endif  // MTPS_WORKER_TRAINER_TRAINER_H_
