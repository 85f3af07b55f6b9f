// The worker's training and evaluation loop (see worker/trainer/trainer.h).
#include "worker/trainer/trainer.h"

#include <time.h>

#include <cstring>

#include <algorithm>

#include "common/base/hash.h"
#include "common/cluster/job_phase.h"
#include "common/eval/metrics.h"
#include "worker/data/example_reader.h"
#include "worker/nn/embedding_bag.h"

namespace mtps {
namespace {

// CPU seconds used so far by `clock` (CLOCK_PROCESS_CPUTIME_ID: every thread
// of the process, ZeroMQ's I/O threads included; CLOCK_THREAD_CPUTIME_ID: the
// calling thread).
double CpuSeconds(clockid_t clock) {
  timespec ts{};
  if (clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

Trainer::Trainer(ClusterMember* member) : member_(member), config_(member->config()) {
  // A worker serves only PING on its endpoint for now.
  member_->rpc().set_request_handler([this](Incoming&& request) {
    if (request.msg.meta.op() == wire::PING) {
      member_->rpc().Reply(request, Message());
    } else {
      member_->rpc().ReplyError(request,
                                Status::InvalidArgument("a worker does not serve op " +
                                                        wire::Op_Name(request.msg.meta.op())));
    }
  });
}

Status Trainer::Setup() {
  rank_ = member_->self().rank();
  num_workers_ = member_->num_workers();
  dim_ = config_.model().embedding_dim();
  MTPS_ASSIGN_OR_RETURN(schema_, ReadSchema(config_.data()));
  ModelInputs inputs;
  inputs.sparse_width = static_cast<int>(schema_.slots.size()) * dim_;
  inputs.dense_width = static_cast<int>(schema_.dense_names.size());
  // Dropout masks differ per worker; parameters (InitParams) do not.
  uint64_t dropout_seed = Mix64(config_.train().seed() ^ Mix64(static_cast<uint64_t>(rank_) + 1));
  MTPS_ASSIGN_OR_RETURN(
      model_, CreateModel<float>(config_.model(), inputs, schema_.label_names, dropout_seed));
  groups_ = model_->embedding_groups();
  model_slots_.clear();
  for (int g = 0; g < groups_; ++g) {
    model_slots_.insert(model_slots_.end(), schema_.slots.begin(), schema_.slots.end());
  }
  params_.assign(static_cast<size_t>(model_->num_params()), 0.0f);
  param_grad_.assign(params_.size(), 0.0f);
  loss_sum_.assign(model_->loss_names().size(), 0.0);

  KvClientOptions o;
  o.dim = dim_;
  o.num_params = model_->num_params();
  o.request_timeout_ms = config_.cluster().request_timeout_ms();
  o.max_inflight_pushes = config_.train().max_inflight_pushes();
  kv_ = std::make_unique<KvClient>(&member_->rpc(), member_->server_ids(), o);
  LOG(INFO) << "worker " << rank_ << ": " << schema_.slots.size() << " sparse slots of dim " << dim_
            << (groups_ > 1 ? " in " + std::to_string(groups_) + " embedding groups" : "") << ", "
            << schema_.dense_names.size() << " dense features, " << model_->num_params()
            << " dense parameters";
  return Status::OK();
}

Status Trainer::Run() {
  MTPS_RETURN_IF_ERROR(Setup());
  if (rank_ == 0) {
    model_->InitParams(config_.train().seed(), params_.data());
    if (config_.model().output_bias_from_prior()) {
      MTPS_ASSIGN_OR_RETURN(RowMatrix<float> sample, SampleLabels());
      model_->InitOutputBiases(sample, params_.data());
    }
    MTPS_RETURN_IF_ERROR(kv_->InitDense(params_.data()));
  }
  MTPS_RETURN_IF_ERROR(member_->Barrier(JobBarrierName(JobBarrier::kStart), num_workers_));
  MTPS_RETURN_IF_ERROR(TrainEpochs());
  MTPS_RETURN_IF_ERROR(member_->Barrier(JobBarrierName(JobBarrier::kTrained), num_workers_));
  MTPS_RETURN_IF_ERROR(Evaluate());
  return member_->Barrier(JobBarrierName(JobBarrier::kEnd), num_workers_);
}

Status Trainer::TrainEpochs() {
  const config::DataConfig& data = config_.data();
  MTPS_ASSIGN_OR_RETURN(auto reader,
                        ExampleReader::Open(data, DataSplit::kTrain, rank_, num_workers_));
  train_start_ = SteadyClock::now();
  last_report_ = train_start_;
  const double process_cpu_start = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
  const double thread_cpu_start = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
  // The next training batch, across epochs; false after the last epoch.
  int epoch = 0;
  auto next_batch = [&](Batch* batch) -> StatusOr<bool> {
    for (;;) {
      MTPS_RETURN_IF_ERROR(reader->Next(config_.train().batch_size(), batch));
      if (batch->num_examples > 0) return true;
      LOG(INFO) << "worker " << rank_ << " finished epoch " << epoch + 1 << " (" << examples_
                << " examples)";
      if (++epoch >= config_.train().epochs()) return false;
      MTPS_RETURN_IF_ERROR(reader->Rewind());
    }
  };
  // Prefetch: the next batch's pull is in flight while this batch computes.
  // Only without a consistency bound, whose gate must precede the pull.
  const bool prefetch =
      config_.train().prefetch() && config_.train().consistency() == config::TrainConfig::ASYNC;
  int cur = 0;
  MTPS_ASSIGN_OR_RETURN(bool have, next_batch(&staged_[cur].batch));
  if (have) {
    MTPS_RETURN_IF_ERROR(WaitForTurn());
    MTPS_RETURN_IF_ERROR(StageBatch(&staged_[cur], /*training=*/true, /*pull_dense=*/true));
  }
  while (have) {
    MTPS_RETURN_IF_ERROR(FinishBatch(&staged_[cur]));
    StagedBatch* next = &staged_[1 - cur];
    MTPS_ASSIGN_OR_RETURN(bool have_next, next_batch(&next->batch));
    if (prefetch && have_next) {
      MTPS_RETURN_IF_ERROR(WaitForTurn());
      MTPS_RETURN_IF_ERROR(StageBatch(next, /*training=*/true, /*pull_dense=*/true));
    }
    MTPS_RETURN_IF_ERROR(TrainStaged(&staged_[cur]));
    ++started_;
    // Heartbeats, clock and progress between batches; never blocks.
    MTPS_RETURN_IF_ERROR(member_->Tick(Deadline::Now()));
    MTPS_RETURN_IF_ERROR(MaybeReportClock());
    MTPS_RETURN_IF_ERROR(MaybeReportProgress(false));
    if (!prefetch && have_next) {
      MTPS_RETURN_IF_ERROR(WaitForTurn());
      MTPS_RETURN_IF_ERROR(StageBatch(next, /*training=*/true, /*pull_dense=*/true));
    }
    cur = 1 - cur;
    have = have_next;
  }
  MTPS_RETURN_IF_ERROR(kv_->Flush());
  // Leave the consistency bound, so nobody waits for this worker any more.
  Message clock(wire::CLOCK);
  clock.meta.mutable_clock()->set_clock(kv_->acked_pushes());
  clock.meta.mutable_clock()->set_started(started_);
  clock.meta.mutable_clock()->set_finished(true);
  MTPS_RETURN_IF_ERROR(
      member_->rpc()
          .Call(kSchedulerNodeId, std::move(clock), config_.cluster().request_timeout_ms())
          .status());
  // CPU per example is steadier than examples/s on a shared machine.
  const double seconds = SecondsSince(train_start_);
  const double process_cpu = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - process_cpu_start;
  const double thread_cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - thread_cpu_start;
  const double per_million = examples_ > 0 ? 1e6 / static_cast<double>(examples_) : 0;
  LOG(INFO) << "worker " << rank_ << " trained " << examples_ << " examples in " << seconds
            << " s; CPU s per 1M examples: process " << process_cpu * per_million
            << ", training thread " << thread_cpu * per_million << " (process " << process_cpu
            << " s, training thread " << thread_cpu << " s)";
  return MaybeReportProgress(true);
}

Status Trainer::WaitForTurn() {
  const config::TrainConfig& train = config_.train();
  if (train.throttle_rank() == rank_ && train.throttle_ms() > 0) {
    // A deliberately slow worker (tests of stragglers); it keeps serving.
    MTPS_RETURN_IF_ERROR(member_->Tick(Deadline::In(train.throttle_ms())));
  }
  if (train.consistency() == config::TrainConfig::ASYNC) return Status::OK();
  const int64_t staleness = train.consistency() == config::TrainConfig::BSP ? 0 : train.staleness();
  const int64_t need = started_ - staleness;  // the slowest clock batch started_ may run at
  if (known_min_clock_ >= need) return Status::OK();
  // Blocked anyway: make this worker's own clock current (all its pushes
  // acknowledged), report it and wait until the slowest worker catches up.
  MTPS_RETURN_IF_ERROR(kv_->Flush());
  Message msg(wire::CLOCK);
  msg.meta.mutable_clock()->set_clock(kv_->acked_pushes());
  msg.meta.mutable_clock()->set_started(started_);
  msg.meta.mutable_clock()->set_wait_for(need);
  auto reply =
      member_->rpc().Call(kSchedulerNodeId, std::move(msg), config_.cluster().barrier_timeout_ms());
  if (!reply.ok()) {
    return Status(reply.status().code(), "waiting for the slowest worker to reach batch " +
                                             std::to_string(need) + ": " +
                                             reply.status().message());
  }
  known_min_clock_ = std::max(known_min_clock_, reply->meta.clock().min_clock());
  reported_clock_ = std::max(reported_clock_, kv_->acked_pushes());
  return Status::OK();
}

Status Trainer::MaybeReportClock() {
  // One report in flight at most, and only when the clock moved.
  const int64_t clock = kv_->acked_pushes();
  if (clock_report_in_flight_ || clock <= reported_clock_) return Status::OK();
  Message msg(wire::CLOCK);
  msg.meta.mutable_clock()->set_clock(clock);
  msg.meta.mutable_clock()->set_started(started_ - 1);  // the latest batch started
  clock_report_in_flight_ = true;
  reported_clock_ = clock;
  return member_->rpc().StartAsync(
      kSchedulerNodeId, std::move(msg), config_.cluster().request_timeout_ms(),
      [this](StatusOr<Message>&& r) {
        clock_report_in_flight_ = false;
        if (r.ok()) {
          known_min_clock_ = std::max(known_min_clock_, r->meta.clock().min_clock());
        } else {
          LOG(WARNING) << "clock report failed: " << r.status();
        }
      });
}

StatusOr<RowMatrix<float>> Trainer::SampleLabels() {
  // Labels of the first kPriorSample training examples of this worker's share.
  constexpr int kPriorSample = 100000;
  MTPS_ASSIGN_OR_RETURN(
      auto reader, ExampleReader::Open(config_.data(), DataSplit::kTrain, rank_, num_workers_));
  std::vector<float> labels;
  int rows = 0;
  Batch batch;
  while (rows < kPriorSample) {
    MTPS_RETURN_IF_ERROR(reader->Next(std::min(4096, kPriorSample - rows), &batch));
    if (batch.num_examples == 0) break;
    labels.insert(labels.end(), batch.labels.begin(), batch.labels.end());
    rows += batch.num_examples;
  }
  const int num_labels = static_cast<int>(schema_.label_names.size());
  return RowMatrix<float>(Eigen::Map<const RowMatrix<float>>(labels.data(), rows, num_labels));
}

Status Trainer::StageBatch(StagedBatch* staged, bool training, bool pull_dense) {
  if (groups_ > 1) ReplicateSlots(staged->batch, groups_, &staged->grouped);
  deduper_.Unique(staged->view(groups_).keys, &staged->unique_keys, &staged->key_index);
  staged->pull_dense = pull_dense;
  return kv_->StartPull(staged->unique_keys, /*create_missing=*/training, pull_dense,
                        &staged->pull);
}

Status Trainer::FinishBatch(StagedBatch* staged) {
  emb_.resize(staged->unique_keys.size() * static_cast<size_t>(dim_));
  MTPS_RETURN_IF_ERROR(
      kv_->FinishPull(&staged->pull, emb_.data(), staged->pull_dense ? params_.data() : nullptr));
  const Batch& batch = staged->batch;
  PoolEmbeddings<float>(staged->view(groups_), model_slots_, staged->key_index, emb_.data(), dim_,
                        &input_);
  labels_ =
      Eigen::Map<const RowMatrix<float>>(batch.labels.data(), batch.num_examples, batch.num_labels);
  return Status::OK();
}

Status Trainer::TrainStaged(StagedBatch* staged) {
  model_->ForwardBackward(params_.data(), input_, labels_, param_grad_.data(), &input_grad_,
                          &losses_);
  emb_grad_.resize(staged->unique_keys.size() * static_cast<size_t>(dim_));
  PoolEmbeddingsBackward<float>(staged->view(groups_), model_slots_, staged->key_index, input_grad_,
                                dim_, staged->unique_keys.size(), emb_grad_.data());
  MTPS_RETURN_IF_ERROR(kv_->Push(staged->unique_keys, emb_grad_.data(), param_grad_.data()));

  examples_ += staged->batch.num_examples;
  for (size_t i = 0; i < losses_.size() && i < loss_sum_.size(); ++i) loss_sum_[i] += losses_[i];
  ++loss_batches_;
  return Status::OK();
}

Status Trainer::MaybeReportProgress(bool force) {
  auto now = SteadyClock::now();
  double since = std::chrono::duration<double>(now - last_report_).count();
  if (!force && since < config_.train().progress_interval_sec()) return Status::OK();
  Message msg(wire::PROGRESS);
  wire::Progress* p = msg.meta.mutable_progress();
  p->set_examples(examples_);
  p->set_seconds(SecondsSince(train_start_));
  for (size_t i = 0; i < loss_sum_.size(); ++i) {
    p->add_loss_names(model_->loss_names()[i]);
    p->add_mean_loss(loss_batches_ > 0 ? loss_sum_[i] / static_cast<double>(loss_batches_) : 0.0);
    loss_sum_[i] = 0.0;
  }
  loss_batches_ = 0;
  last_report_ = now;
  // Fire and forget: a lost progress report only delays the progress line.
  return member_->rpc().StartAsync(kSchedulerNodeId, std::move(msg),
                                   config_.cluster().request_timeout_ms(),
                                   [](StatusOr<Message>&& r) {
                                     if (!r.ok())
                                       LOG(WARNING) << "progress report failed: " << r.status();
                                   });
}

Status Trainer::Evaluate() {
  double train_seconds = SecondsSince(train_start_);
  const config::DataConfig& data = config_.data();
  MTPS_ASSIGN_OR_RETURN(auto reader,
                        ExampleReader::Open(data, DataSplit::kTest, rank_, num_workers_));
  // Training is over everywhere (the "trained" barrier): one dense pull serves
  // every evaluation batch.
  bool dense_pulled = false;
  StagedBatch& staged = staged_[0];
  eval_.clear();
  int64_t examples = 0;
  const int bins = config_.eval().auc_bins();
  const std::vector<std::string>& tasks = model_->eval_task_names();
  // Binned mode: fold each batch's scores into histograms right away, so
  // memory does not grow with the test set.
  std::vector<ScoreHistogram> histograms;
  if (bins > 0) histograms.assign(tasks.size(), ScoreHistogram(bins));
  for (;;) {
    MTPS_RETURN_IF_ERROR(reader->Next(config_.train().eval_batch_size(), &staged.batch));
    if (staged.batch.num_examples == 0) break;
    MTPS_RETURN_IF_ERROR(StageBatch(&staged, /*training=*/false, /*pull_dense=*/!dense_pulled));
    MTPS_RETURN_IF_ERROR(FinishBatch(&staged));
    dense_pulled = true;
    model_->Evaluate(params_.data(), input_, labels_, &eval_);
    if (bins > 0) {
      for (size_t t = 0; t < histograms.size() && t < eval_.size(); ++t) {
        for (size_t i = 0; i < eval_[t].scores.size(); ++i) {
          histograms[t].Add(eval_[t].scores[i], eval_[t].labels[i]);
        }
        eval_[t].scores.clear();
        eval_[t].labels.clear();
      }
    }
    examples += staged.batch.num_examples;
    MTPS_RETURN_IF_ERROR(member_->Tick(Deadline::Now()));
  }
  LOG(INFO) << "worker " << rank_ << " scored " << examples << " held-out examples";

  Message msg(wire::EVAL_REPORT);
  wire::EvalReport* r = msg.meta.mutable_eval_report();
  r->set_train_examples(examples_);
  r->set_train_seconds(train_seconds);
  eval_.resize(tasks.size());
  if (bins > 0) r->set_auc_bins(bins);
  for (size_t t = 0; t < tasks.size(); ++t) {
    r->add_tasks(tasks[t]);
    if (bins > 0) {
      r->add_logloss_sum(histograms[t].logloss_sum());
      msg.payloads.push_back(Payload::FromVector(std::move(histograms[t].positives())));
      msg.payloads.push_back(Payload::FromVector(std::move(histograms[t].negatives())));
    } else {
      msg.payloads.push_back(Payload::FromVector(std::move(eval_[t].scores)));
      msg.payloads.push_back(Payload::FromVector(std::move(eval_[t].labels)));
    }
  }
  auto reply =
      member_->rpc().Call(kSchedulerNodeId, std::move(msg), config_.cluster().request_timeout_ms());
  return reply.status();
}

}  // namespace mtps
