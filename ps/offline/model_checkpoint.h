// ModelCheckpoint: a job's trained model as one of its checkpoints holds it,
// loaded into memory outside any running job, for scoring and export
// (mtps-predict, launcher/predict_main.cc). No networking, no threads.
//
// Which checkpoint (ChooseCheckpoint). The run dir's config.pbtxt (the
// resolved job config the scheduler wrote) says where checkpoints live:
// checkpoint.dir when absolute; else RUN_DIR/<dir> (default "checkpoints");
// when that holds no checkpoint directory, a remote run's copies,
// RUN_DIR/hosts/<host>/<dir> (mtps-launch ssh/slurm keep the scheduler's
// files there), the one with the newest intact checkpoint. Within a root the
// newest checkpoint whose manifest and every file check out
// (CheckpointStore::Verify) is taken, as a resuming scheduler does; each
// newer one passed over is named with why in the choice's notes. An
// explicit id is taken or refused, never replaced by another.
//
// What is loaded (ModelCheckpoint::Load): every server partition's shard
// files (the MTPSROWS snapshot, then its MTPSDELT chain in id order, exactly
// as a resuming server restores them, ps/server/server.cc), each file
// checked against the manifest again as it is read; every partition's dense
// block (MTPSDENS), concatenated in partition order (common/cluster/
// partition.h DenseBlockOf, each block's length checked); the workers'
// model states (checkpoint.WorkerState). The config is the manifest's own
// (the one the tables were trained with); the caller checks it against
// config.pbtxt with SameModelSections.
//
// Lookup answers keys as a server answers an evaluation pull
// (create_missing false): the key's row when its partition (KeyPartitioner)
// and shard (KeyShard) hold one, else its initial value (InitialValue with
// train.seed and server.embedding_init_scale). Not thread-safe: one thread
// owns a ModelCheckpoint.
#ifndef MTPS_PS_OFFLINE_MODEL_CHECKPOINT_H_
#define MTPS_PS_OFFLINE_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/cluster/partition.h"
#include "proto/checkpoint.pb.h"
#include "proto/config.pb.h"
#include "ps/table/sparse_table.h"

namespace mtps {

// The checkpoint ChooseCheckpoint settled on.
struct CheckpointChoice {
  std::string root;                // the checkpoint root it lives in
  std::string dir;                 // root/ckpt-NNNNNNNN
  checkpoint::Manifest manifest;   // verified: every file has its size and crc32
  std::vector<std::string> notes;  // newer checkpoints passed over, each with why
};

// The roots ChooseCheckpoint searches for `config` (the run's config.pbtxt)
// in run_dir, in order (see the file comment); the hosts' copies are listed
// only when they exist.
std::vector<std::string> CheckpointRoots(const std::string& run_dir, const config::Config& config);

// See the file comment. id < 0: the newest intact checkpoint; else
// checkpoint `id` (NotFound when no root has it, naming the ids there;
// Corruption naming the file and why when it fails Verify). No checkpoint
// anywhere is NotFound naming the places searched; checkpoints none of
// which is intact, Corruption naming each with its reason.
StatusOr<CheckpointChoice> ChooseCheckpoint(const std::string& run_dir,
                                            const config::Config& config, int64_t id);

// True when a and b agree on the sections that give a checkpoint's files
// their meaning (data, model, server), as a resume requires.
bool SameModelSections(const config::Config& a, const config::Config& b);

class ModelCheckpoint {
 public:
  // Loads the chosen checkpoint (see the file comment). A file that does not
  // parse, fails its checksum or does not fit the manifest's config is
  // Corruption or InvalidArgument naming the file and why.
  static StatusOr<std::unique_ptr<ModelCheckpoint>> Load(const CheckpointChoice& choice);

  ModelCheckpoint(const ModelCheckpoint&) = delete;
  ModelCheckpoint& operator=(const ModelCheckpoint&) = delete;

  const checkpoint::Manifest& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  // The job config the checkpoint was taken with (Manifest.config).
  const config::Config& config() const { return config_; }
  int dim() const { return config_.model().embedding_dim(); }

  // The dense parameters, every server's block in order.
  const std::vector<float>& dense() const { return dense_; }
  // Worker `rank`'s model state (batch-norm running statistics; empty for
  // a model without any). NotFound when the checkpoint has no state of
  // that worker.
  StatusOr<std::vector<float>> WorkerModelState(int rank) const;

  // Rows of keys[0..n) into out[0..n * dim()) (see the file comment).
  void Lookup(const uint64_t* keys, size_t n, float* out);
  // Sparse rows held, over every partition and shard.
  size_t rows() const;
  // Calls fn(key, embedding) for every row held (SparseTable::ForEachRow),
  // partition by partition; no key appears twice.
  void ForEachRow(const std::function<void(uint64_t key, const float* embedding)>& fn) const;

 private:
  ModelCheckpoint(const CheckpointChoice& choice, config::Config config);
  // Reads file `name` of the checkpoint, checked against its manifest entry.
  StatusOr<std::string> ReadFile(const std::string& name) const;
  // Loads partition `partition`'s shards and appends its dense block to
  // dense_, whose length goes into *dense_size.
  Status LoadPartition(int partition, int64_t* dense_size);

  const checkpoint::Manifest manifest_;
  const std::string dir_;
  const config::Config config_;
  const KeyPartitioner partitioner_;
  int shards_ = 1;
  std::vector<std::vector<SparseTable>> tables_;  // [partition][shard]
  std::vector<float> dense_;
};

}  // namespace mtps

#endif  // MTPS_PS_OFFLINE_MODEL_CHECKPOINT_H_
