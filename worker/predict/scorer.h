// Scorer: a trained model's evaluation forward pass outside a job, on
// Batches from the workers' own readers (worker/data/example_reader.h), for
// mtps-predict (launcher/predict_main.cc).
//
// Per batch it does exactly what a worker's evaluation does
// (worker/trainer/trainer.cc, Trainer::Evaluate): the slots replicated per
// embedding group (ReplicateSlots, the groups' salted keys), the batch's
// distinct keys (KeyDeduper), their rows from `lookup` (where a worker pulls
// them from the servers), PoolEmbeddings into the input rows, then the
// model in evaluation mode (no dropout; batch norms with the running
// statistics of the model state given). The dense parameters live in an
// array aligned as the trainer's, so the towers round as they do on a
// worker.
//
// Owns its model and workspaces; not thread-safe (one per thread).
#ifndef MTPS_WORKER_PREDICT_SCORER_H_
#define MTPS_WORKER_PREDICT_SCORER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/eval/metrics.h"
#include "proto/config.pb.h"
#include "worker/data/example.h"
#include "worker/models/model.h"
#include "worker/nn/eigen.h"
#include "worker/nn/embedding_bag.h"

namespace mtps {

class Scorer {
 public:
  // Writes the embedding rows of keys[0..n) into out[0..n * embedding_dim).
  using RowLookup = std::function<void(const uint64_t* keys, size_t n, float* out)>;

  // The model config.model() names, for input rows of `schema` (the data's
  // slots and dense features; its label names are the model's data labels).
  // `params`: the dense parameters (the model's num_params, else
  // InvalidArgument); `state`: a worker's model state (Model::SetState;
  // empty for none; an invalid one is InvalidArgument saying why).
  static StatusOr<std::unique_ptr<Scorer>> Create(const config::Config& config,
                                                  const FeatureSchema& schema,
                                                  const std::vector<float>& params,
                                                  const std::vector<float>& state,
                                                  RowLookup lookup);

  Model<float>& model() { return *model_; }
  const std::vector<std::string>& tasks() const { return model_->eval_task_names(); }
  int dim() const { return dim_; }

  // Runs `batch` (of the schema given to Create) through the model:
  // input() becomes its B x input_dim rows and *scores its B x tasks()
  // scores (Model::Predict).
  void Score(const Batch& batch, RowMatrix<float>* scores);
  // Model::Evaluate on the last Score's input rows with that batch's
  // labels: appends the scores and labels of each task's evaluated rows to
  // *out, as a worker's evaluation reports them.
  void Evaluate(const Batch& batch, std::vector<EvalColumn>* out);
  // The input rows of the last Score.
  const RowMatrix<float>& input() const { return input_; }

 private:
  using AlignedFloats = std::vector<float, Eigen::aligned_allocator<float>>;
  Scorer(std::unique_ptr<Model<float>> model, const FeatureSchema& schema, int dim,
         RowLookup lookup);

  std::unique_ptr<Model<float>> model_;
  const int dim_;
  const int groups_;
  std::vector<SlotInfo> model_slots_;  // schema slots, once per group
  RowLookup lookup_;
  AlignedFloats params_;
  // Workspaces, reused between batches.
  Batch grouped_;
  KeyDeduper deduper_;
  std::vector<uint64_t> unique_keys_;
  std::vector<uint32_t> key_index_;
  AlignedFloats emb_;
  RowMatrix<float> input_;
  RowMatrix<float> labels_;
};

}  // namespace mtps

#endif  // MTPS_WORKER_PREDICT_SCORER_H_
