// The worker's training and evaluation loop (see worker/trainer/trainer.h).
#include "worker/trainer/trainer.h"

#include <time.h>

#include <cmath>
#include <cstring>

#include <algorithm>

#include "common/base/finite.h"
#include "common/base/hash.h"
#include "common/cluster/job_phase.h"
#include "common/eval/metrics.h"
#include "common/metrics/process_stats.h"
#include "proto/checkpoint.pb.h"
#include "worker/data/example_reader.h"
#include "worker/data/read_ahead_reader.h"
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

Trainer::Trainer(ClusterMember* member, int default_compute_threads)
    : member_(member),
      config_(member->config()),
      default_compute_threads_(std::max(1, default_compute_threads)) {
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
  bad_lines_ = std::make_shared<BadLineBudget>(config_.data().max_bad_lines());
  MTPS_ASSIGN_OR_RETURN(schema_, ReadSchema(config_.data()));
  ModelInputs inputs;
  inputs.sparse_width = static_cast<int>(schema_.slots.size()) * dim_;
  inputs.dense_width = static_cast<int>(schema_.dense_names.size());
  inputs.compute_threads = config_.train().compute_threads() > 0 ? config_.train().compute_threads()
                                                                 : default_compute_threads_;
  // Dropout masks differ per worker; parameters (InitParams) do not.
  dropout_seed_ = Mix64(config_.train().seed() ^ Mix64(static_cast<uint64_t>(rank_) + 1));
  MTPS_ASSIGN_OR_RETURN(
      model_, CreateModel<float>(config_.model(), inputs, schema_.label_names, dropout_seed_));
  groups_ = model_->embedding_groups();
  model_slots_.clear();
  for (int g = 0; g < groups_; ++g) {
    model_slots_.insert(model_slots_.end(), schema_.slots.begin(), schema_.slots.end());
  }
  params_.assign(static_cast<size_t>(model_->num_params()), 0.0f);
  param_grad_.assign(params_.size(), 0.0f);
  dense_sync_batches_ = config_.train().dense_sync_batches();
  if (dense_sync_batches_ > 1) {
    local_dense_ = std::make_unique<LocalDense>(config_.server().dense_optimizer(), params_.size());
    dense_pulled_.assign(params_.size(), 0.0f);
  }
  loss_sum_.assign(model_->loss_names().size(), 0.0);

  KvClientOptions o;
  o.dim = dim_;
  o.num_params = model_->num_params();
  o.request_timeout_ms = config_.cluster().request_timeout_ms();
  o.max_inflight_pushes = config_.train().max_inflight_pushes();
  kv_ = std::make_unique<KvClient>(&member_->rpc(), member_->server_ids(), o);
  SetupMetrics();
  // A failover moves partitions: route to their new primaries.
  member_->set_on_partition_map([this] {
    std::vector<int> primaries;
    for (int p = 0; p < member_->num_servers(); ++p) primaries.push_back(member_->PrimaryOf(p));
    kv_->SetPrimaries(std::move(primaries));
  });
  LOG(INFO) << "worker " << rank_ << ": " << schema_.slots.size() << " sparse slots of dim " << dim_
            << (groups_ > 1 ? " in " + std::to_string(groups_) + " embedding groups" : "") << ", "
            << schema_.dense_names.size() << " dense features, " << model_->num_params()
            << " dense parameters"
            << (local_dense_ != nullptr ? " stepped here, synced every " +
                                              std::to_string(dense_sync_batches_) + " batches"
                                        : "")
            << ", " << inputs.compute_threads << " compute thread"
            << (inputs.compute_threads == 1 ? "" : "s");
  return Status::OK();
}

Trainer::~Trainer() {
  member_->set_on_partition_map(nullptr);
  member_->set_heartbeat_metrics(nullptr);
}

void Trainer::SetupMetrics() {
  examples_metric_ = metrics_.GetCounter("mtps_train_examples_total",
                                         "Training examples this worker trained (whole job).");
  examples_per_sec_metric_ = metrics_.GetGauge(
      "mtps_train_examples_per_second",
      "Training examples per second of this worker over its latest progress interval.");
  epoch_metric_ = metrics_.GetGauge("mtps_train_epoch",
                                    "The epoch (1-based) of this worker's latest training batch.");
  const std::vector<std::string>& names = model_->loss_names();
  running_auc_.assign(names.size(), RunningAuc());
  train_scores_.assign(names.size(), EvalColumn());
  loss_metrics_.clear();
  auc_metrics_.clear();
  for (const std::string& task : names) {
    loss_metrics_.push_back(metrics_.GetGauge(
        "mtps_train_loss", "Mean training loss per task over the latest progress interval.",
        {{"task", task}}));
    auc_metrics_.push_back(metrics_.GetGauge(
        "mtps_train_auc",
        "AUC of the latest training predictions (before each update) per task, over a window of "
        "the latest " +
            std::to_string(RunningAuc::kDefaultWindow) + " examples; NaN while a class is missing.",
        {{"task", task}}));
  }
  // Unknown until the first progress report.
  for (Gauge* g : loss_metrics_) g->Set(std::nan(""));
  for (Gauge* g : auc_metrics_) g->Set(std::nan(""));
  bad_lines_metric_ =
      metrics_.GetCounter("mtps_data_bad_lines_skipped_total",
                          "Malformed data lines this worker skipped within data.max_bad_lines.");
  memory_metric_ = metrics_.GetGauge("mtps_process_resident_memory_bytes",
                                     "Resident memory of the process (/proc/self/statm).");
  const std::string pull_help =
      "Round trip of a pull request to one server, as the worker's client saw it.";
  const std::string push_help =
      "Round trip of a push request to one server, as the worker's client saw it.";
  KvClientMetrics m;
  m.pull_sparse = metrics_.GetHistogram("mtps_client_pull_latency_seconds", pull_help,
                                        LatencyBuckets(), {{"op", "PULL_SPARSE"}});
  m.pull_dense = metrics_.GetHistogram("mtps_client_pull_latency_seconds", pull_help,
                                       LatencyBuckets(), {{"op", "PULL_DENSE"}});
  m.push_sparse = metrics_.GetHistogram("mtps_client_push_latency_seconds", push_help,
                                        LatencyBuckets(), {{"op", "PUSH_SPARSE"}});
  m.push_dense = metrics_.GetHistogram("mtps_client_push_latency_seconds", push_help,
                                       LatencyBuckets(), {{"op", "PUSH_DENSE"}});
  kv_->set_metrics(m);
  UpdateMetrics();
  member_->set_heartbeat_metrics([this](wire::MetricsSnapshot* snapshot) {
    UpdateMetrics();
    *snapshot = metrics_.Snapshot();
  });
}

void Trainer::UpdateMetrics() {
  if (auto rss = ResidentMemoryBytes(); rss.ok()) memory_metric_->Set(static_cast<double>(*rss));
  if (bad_lines_ != nullptr && bad_lines_->skipped() > bad_lines_exported_) {
    bad_lines_metric_->Increment(static_cast<double>(bad_lines_->skipped() - bad_lines_exported_));
    bad_lines_exported_ = bad_lines_->skipped();
  }
}

void Trainer::RecordTrainingScores() {
  for (EvalColumn& c : train_scores_) {
    c.scores.clear();
    c.labels.clear();
  }
  model_->TrainingScores(labels_, &train_scores_);
  for (size_t t = 0; t < running_auc_.size() && t < train_scores_.size(); ++t) {
    const EvalColumn& c = train_scores_[t];
    for (size_t i = 0; i < c.scores.size(); ++i) running_auc_[t].Add(c.scores[i], c.labels[i]);
  }
}

Status Trainer::Run() {
  MTPS_RETURN_IF_ERROR(Setup());
  if (member_->resuming()) {
    // The servers hold the checkpoint's dense parameters already.
    MTPS_RETURN_IF_ERROR(RestoreState());
  } else if (rank_ == 0) {
    model_->InitParams(config_.train().seed(), params_.data());
    if (config_.model().output_bias_from_prior()) {
      MTPS_ASSIGN_OR_RETURN(RowMatrix<float> sample, SampleLabels());
      model_->InitOutputBiases(sample, params_.data());
    }
    MTPS_RETURN_IF_ERROR(kv_->InitDense(params_.data()));
  }
  MTPS_RETURN_IF_ERROR(member_->Barrier(JobBarrierName(JobBarrier::kStart), num_workers_));
  if (finished_before_) {
    MTPS_RETURN_IF_ERROR(ReportFinished());
  } else {
    MTPS_RETURN_IF_ERROR(TrainEpochs());
  }
  MTPS_RETURN_IF_ERROR(member_->Barrier(JobBarrierName(JobBarrier::kTrained), num_workers_));
  MTPS_RETURN_IF_ERROR(Evaluate());
  return member_->Barrier(JobBarrierName(JobBarrier::kEnd), num_workers_);
}

Status Trainer::TrainEpochs() {
  const config::DataConfig& data = config_.data();
  MTPS_ASSIGN_OR_RETURN(
      auto reader, ExampleReader::Open(data, DataSplit::kTrain, rank_, num_workers_, bad_lines_));
  train_start_ = SteadyClock::now();
  last_report_ = train_start_;
  epoch_metric_->Set(trained_epoch_ + 1);
  const double process_cpu_start = CpuSeconds(CLOCK_PROCESS_CPUTIME_ID);
  const double thread_cpu_start = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
  // A resumed worker continues where its checkpoint was cut: the epoch's
  // shuffle order is that epoch's (Rewind), and the examples of it already
  // trained are read and dropped.
  int epoch = trained_epoch_;
  // Examples read of the current epoch (those skipped included): a whole
  // epoch's is examples_per_epoch_.
  int64_t read_in_epoch = skip_examples_;
  for (int e = 0; e < epoch; ++e) MTPS_RETURN_IF_ERROR(reader->Rewind());
  if (skip_examples_ > 0) {
    Batch skipped;
    int64_t left = skip_examples_;
    while (left > 0) {
      MTPS_RETURN_IF_ERROR(reader->Next(static_cast<int>(std::min<int64_t>(left, 4096)), &skipped));
      if (skipped.num_examples == 0) break;
      left -= skipped.num_examples;
    }
    if (left != 0) {
      return Status::InvalidArgument(
          "resuming worker " + std::to_string(rank_) + ": its share of epoch " +
          std::to_string(epoch + 1) + " has fewer than the " + std::to_string(skip_examples_) +
          " examples the checkpoint says were trained (was the data changed?)");
    }
    skip_examples_ = 0;
  }
  if (config_.train().read_ahead_batches() > 0) {
    ReadAheadOptions o;
    o.batch_size = config_.train().batch_size();
    o.depth = config_.train().read_ahead_batches();
    o.wait_timeout_ms = config_.cluster().barrier_timeout_ms();
    reader = NewReadAheadReader(std::move(reader), o);
  }
  // The next training batch, across epochs; false after the last epoch.
  auto next_batch = [&](StagedBatch* staged) -> StatusOr<bool> {
    Batch* batch = &staged->batch;
    for (;;) {
      MTPS_RETURN_IF_ERROR(reader->Next(config_.train().batch_size(), batch));
      staged->epoch = epoch;
      if (batch->num_examples > 0) {
        read_in_epoch += batch->num_examples;
        return true;
      }
      if (examples_per_epoch_ < 0) examples_per_epoch_ = read_in_epoch;
      read_in_epoch = 0;
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
  MTPS_ASSIGN_OR_RETURN(bool have, next_batch(&staged_[cur]));
  if (have) {
    MTPS_RETURN_IF_ERROR(WaitForTurn());
    MTPS_RETURN_IF_ERROR(StageBatch(&staged_[cur], /*training=*/true, /*pull_dense=*/true));
  }
  while (have) {
    if (!staged_[cur].pulled) MTPS_RETURN_IF_ERROR(FinishBatch(&staged_[cur]));
    StagedBatch* next = &staged_[1 - cur];
    MTPS_ASSIGN_OR_RETURN(bool have_next, next_batch(next));
    if (prefetch && have_next) {
      MTPS_RETURN_IF_ERROR(WaitForTurn());
      MTPS_RETURN_IF_ERROR(StageBatch(next, /*training=*/true, /*pull_dense=*/true));
    }
    // Local dense steps sync every K batches, before a checkpoint and after
    // the last batch.
    const bool sync_dense = local_dense_ == nullptr || (started_ + 1) % dense_sync_batches_ == 0 ||
                            !have_next || member_->checkpoint_requested() > checkpoint_done_;
    MTPS_RETURN_IF_ERROR(TrainStaged(&staged_[cur], sync_dense));
    ++started_;
    if (staged_[cur].epoch != trained_epoch_) {
      trained_epoch_ = staged_[cur].epoch;
      trained_in_epoch_ = 0;
      epoch_metric_->Set(trained_epoch_ + 1);
    }
    trained_in_epoch_ += staged_[cur].batch.num_examples;
    // Heartbeats, clock and progress between batches; never blocks.
    MTPS_RETURN_IF_ERROR(member_->Tick(Deadline::Now()));
    MTPS_RETURN_IF_ERROR(MaybeReportClock());
    MTPS_RETURN_IF_ERROR(MaybeReportProgress(false));
    // A batch boundary: the place to pause for a checkpoint.
    MTPS_RETURN_IF_ERROR(MaybeCheckpoint(prefetch && have_next ? next : nullptr));
    if (!prefetch && have_next) {
      MTPS_RETURN_IF_ERROR(WaitForTurn());
      MTPS_RETURN_IF_ERROR(StageBatch(next, /*training=*/true, /*pull_dense=*/true));
    }
    cur = 1 - cur;
    have = have_next;
  }
  training_done_ = true;
  MTPS_RETURN_IF_ERROR(ReportFinished());
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

Status Trainer::ReportFinished() {
  MTPS_RETURN_IF_ERROR(kv_->Flush());
  // Leave the consistency bound, so nobody waits for this worker any more;
  // the final state stands for this worker in checkpoints from now on.
  Message msg(wire::CLOCK);
  wire::Clock* c = msg.meta.mutable_clock();
  c->set_clock(clock());
  c->set_started(started_);
  c->set_finished(true);
  c->set_epoch(config_.train().epochs());
  c->set_worker_state(WorkerStateBytes(/*finished=*/true));
  return member_->rpc()
      .Call(kSchedulerNodeId, std::move(msg), config_.cluster().request_timeout_ms())
      .status();
}

std::string Trainer::WorkerStateBytes(bool finished) const {
  checkpoint::WorkerState w;
  w.set_rank(rank_);
  w.set_epoch(finished ? config_.train().epochs() : trained_epoch_);
  w.set_epoch_examples(finished ? 0 : trained_in_epoch_);
  w.set_batches(started_);
  w.set_examples(examples_);
  for (float v : model_->State()) w.add_model_state(v);
  w.set_finished(finished);
  w.set_train_seconds(seconds_before_ + SecondsSince(train_start_));
  if (examples_per_epoch_ >= 0) w.set_examples_per_epoch(examples_per_epoch_);
  return w.SerializeAsString();
}

Status Trainer::RestoreState() {
  const wire::Restore& r = member_->restore();
  checkpoint::WorkerState w;
  if (!w.ParseFromString(r.worker_state()) || w.rank() != rank_) {
    return Status::Corruption("checkpoint " + std::to_string(r.checkpoint_id()) + " in " + r.dir() +
                              ": the state of worker " + std::to_string(rank_) +
                              " does not parse or belongs to another rank");
  }
  if (w.model_state_size() > 0) {
    Status s = model_->SetState(std::vector<float>(w.model_state().begin(), w.model_state().end()));
    if (!s.ok()) {
      return Status::Corruption("checkpoint " + std::to_string(r.checkpoint_id()) +
                                ": model state of worker " + std::to_string(rank_) + ": " +
                                s.message());
    }
  }
  trained_epoch_ = w.epoch();
  trained_in_epoch_ = skip_examples_ = w.epoch_examples();
  started_ = clock_base_ = w.batches();
  examples_ = w.examples();
  last_report_examples_ = examples_;
  examples_metric_->Increment(static_cast<double>(examples_));
  if (w.has_examples_per_epoch()) examples_per_epoch_ = w.examples_per_epoch();
  finished_before_ = w.finished();
  seconds_before_ = w.train_seconds();
  // Dropout masks go on from a seed of the position (the RNG's state in
  // short): the same position always gives the same masks.
  model_->SeedDropout(Mix64(dropout_seed_ ^ Mix64(static_cast<uint64_t>(started_) + 1)));
  LOG(INFO) << "worker " << rank_ << " resumes from checkpoint " << r.checkpoint_id() << " (step "
            << r.step() << "): "
            << (finished_before_ ? "training already done"
                                 : "epoch " + std::to_string(trained_epoch_ + 1) + ", " +
                                       std::to_string(trained_in_epoch_) + " examples into it")
            << ", " << started_ << " batches";
  return Status::OK();
}

Status Trainer::MaybeCheckpoint(StagedBatch* in_flight) {
  const uint64_t id = member_->checkpoint_requested();
  if (id <= checkpoint_done_) return Status::OK();
  // Local dense steps not pushed yet: the next batch syncs them, and this
  // worker takes part after it.
  if (dense_unsynced_) return Status::OK();
  checkpoint_done_ = id;
  // Nothing of this worker may be in flight while the servers copy their
  // rows: the prefetched pull lands first, and every push is acknowledged.
  if (in_flight != nullptr && !in_flight->pulled) {
    MTPS_RETURN_IF_ERROR(FinishBatch(in_flight));
    in_flight->pulled = true;
  }
  MTPS_RETURN_IF_ERROR(kv_->Flush());
  Message msg(wire::CHECKPOINT_READY);
  msg.meta.mutable_checkpoint()->set_id(id);
  msg.meta.mutable_checkpoint()->set_worker_state(WorkerStateBytes(/*finished=*/false));
  auto reply =
      member_->rpc().Call(kSchedulerNodeId, std::move(msg), config_.cluster().barrier_timeout_ms());
  if (!reply.ok()) {
    return Status(reply.status().code(),
                  "checkpoint " + std::to_string(id) + ": " + reply.status().message());
  }
  return Status::OK();
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
  while (known_min_clock_ < need) {
    // Blocked anyway: make this worker's own clock current (all its pushes
    // acknowledged), report it and wait until the slowest worker catches up
    // (or a checkpoint needs this worker, which takes part and waits again).
    MTPS_RETURN_IF_ERROR(kv_->Flush());
    Message msg(wire::CLOCK);
    msg.meta.mutable_clock()->set_clock(clock());
    msg.meta.mutable_clock()->set_started(started_);
    msg.meta.mutable_clock()->set_epoch(trained_epoch_);
    msg.meta.mutable_clock()->set_wait_for(need);
    auto reply = member_->rpc().Call(kSchedulerNodeId, std::move(msg),
                                     config_.cluster().barrier_timeout_ms());
    if (!reply.ok()) {
      return Status(reply.status().code(), "waiting for the slowest worker to reach batch " +
                                               std::to_string(need) + ": " +
                                               reply.status().message());
    }
    known_min_clock_ = std::max(known_min_clock_, reply->meta.clock().min_clock());
    reported_clock_ = std::max(reported_clock_, clock());
    member_->NoteCheckpointRequest(reply->meta.checkpoint_request());
    MTPS_RETURN_IF_ERROR(MaybeCheckpoint(nullptr));
  }
  return Status::OK();
}

Status Trainer::MaybeReportClock() {
  // One report in flight at most, and only when the clock moved.
  const int64_t now_clock = clock();
  if (clock_report_in_flight_ || now_clock <= reported_clock_) return Status::OK();
  Message msg(wire::CLOCK);
  msg.meta.mutable_clock()->set_clock(now_clock);
  msg.meta.mutable_clock()->set_started(started_ - 1);  // the latest batch started
  msg.meta.mutable_clock()->set_epoch(trained_epoch_);
  clock_report_in_flight_ = true;
  reported_clock_ = now_clock;
  return member_->rpc().StartAsync(
      kSchedulerNodeId, std::move(msg), config_.cluster().request_timeout_ms(),
      [this, alive = std::weak_ptr<int>(alive_)](StatusOr<Message>&& r) {
        if (alive.expired()) return;  // answered after the trainer is gone
        clock_report_in_flight_ = false;
        if (r.ok()) {
          known_min_clock_ = std::max(known_min_clock_, r->meta.clock().min_clock());
          member_->NoteCheckpointRequest(r->meta.checkpoint_request());
        } else {
          LOG(WARNING) << "clock report failed: " << r.status();
        }
      });
}

StatusOr<RowMatrix<float>> Trainer::SampleLabels() {
  // Labels of the first kPriorSample training examples of this worker's share.
  constexpr int kPriorSample = 100000;
  // Training reads (and counts and logs) these lines again: a quiet budget of its own.
  MTPS_ASSIGN_OR_RETURN(
      auto reader,
      ExampleReader::Open(config_.data(), DataSplit::kTrain, rank_, num_workers_,
                          std::make_shared<BadLineBudget>(config_.data().max_bad_lines(),
                                                          BadLineBudget::Logging::kQuiet)));
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
  staged->merge_dense = false;
  if (training && local_dense_ != nullptr) {
    pull_dense = dense_pull_due_;
    dense_pull_due_ = false;
    staged->merge_dense = pull_dense;
    if (pull_dense) local_dense_->PullSent();
  }
  staged->pull_dense = pull_dense;
  staged->pulled = false;
  return kv_->StartPull(staged->unique_keys, /*create_missing=*/training, pull_dense,
                        &staged->pull);
}

Status Trainer::FinishBatch(StagedBatch* staged) {
  emb_.resize(staged->unique_keys.size() * static_cast<size_t>(dim_));
  float* dense = !staged->pull_dense   ? nullptr
                 : staged->merge_dense ? dense_pulled_.data()
                                       : params_.data();
  MTPS_RETURN_IF_ERROR(kv_->FinishPull(&staged->pull, emb_.data(), dense));
  if (staged->merge_dense) local_dense_->Merge(params_.data(), dense_pulled_.data());
  const Batch& batch = staged->batch;
  PoolEmbeddings<float>(staged->view(groups_), model_slots_, staged->key_index, emb_.data(), dim_,
                        &input_);
  labels_ =
      Eigen::Map<const RowMatrix<float>>(batch.labels.data(), batch.num_examples, batch.num_labels);
  return Status::OK();
}

Status Trainer::TrainStaged(StagedBatch* staged, bool sync_dense) {
  model_->ForwardBackward(params_.data(), input_, labels_, param_grad_.data(), &input_grad_,
                          &losses_);
  RecordTrainingScores();
  emb_grad_.resize(staged->unique_keys.size() * static_cast<size_t>(dim_));
  PoolEmbeddingsBackward<float>(staged->view(groups_), model_slots_, staged->key_index, input_grad_,
                                dim_, staged->unique_keys.size(), emb_grad_.data());
  MTPS_RETURN_IF_ERROR(CheckFinite(*staged));
  const std::vector<uint64_t>* keys = &staged->unique_keys;
  if (const uint64_t counter = config_.train().counter_key(); counter != 0) {
    // The exactly-once oracle (TrainConfig.counter_key): +1 per applied push
    // under SGD.
    push_keys_ = staged->unique_keys;
    push_keys_.push_back(counter);
    emb_grad_.resize(push_keys_.size() * static_cast<size_t>(dim_), 0.0f);
    float* row = emb_grad_.data() + staged->unique_keys.size() * static_cast<size_t>(dim_);
    std::fill(row, row + dim_, 0.0f);
    row[0] = -1.0f / config_.server().sparse_optimizer().sgd().learning_rate();
    keys = &push_keys_;
  }
  const float* dense_push = param_grad_.data();
  if (local_dense_ != nullptr) {
    // A non-finite gradient got here only under SKIP_ROWS: no step from it.
    if (dense_grad_finite_) {
      local_dense_->Step(params_.data(), param_grad_.data());
      dense_unsynced_ = true;
    }
    dense_push = nullptr;
    if (sync_dense) {
      dense_push = local_dense_->TakeChange(params_.data());
      dense_pull_due_ = true;
      dense_unsynced_ = false;
    }
  }
  MTPS_RETURN_IF_ERROR(kv_->Push(*keys, emb_grad_.data(), dense_push));

  examples_ += staged->batch.num_examples;
  examples_metric_->Increment(staged->batch.num_examples);
  for (size_t i = 0; i < losses_.size() && i < loss_sum_.size(); ++i) loss_sum_[i] += losses_[i];
  ++loss_batches_;
  return Status::OK();
}

Status Trainer::CheckFinite(const StagedBatch& staged) {
  std::string what;
  const std::vector<std::string>& names = model_->loss_names();
  for (size_t i = 0; i < losses_.size() && what.empty(); ++i) {
    if (!std::isfinite(losses_[i])) {
      what = "the loss of task " + (i < names.size() ? names[i] : std::to_string(i)) + " is " +
             std::to_string(losses_[i]);
    }
  }
  // The local dense step reads this too (one scan of the gradient).
  dense_grad_finite_ = AllFinite(param_grad_.data(), param_grad_.size());
  if (what.empty() && !dense_grad_finite_) {
    const size_t i = FirstNonfinite(param_grad_.data(), param_grad_.size());
    what = "dense gradient " + std::to_string(i) + " is " + std::to_string(param_grad_[i]);
  }
  const size_t emb_values = staged.unique_keys.size() * static_cast<size_t>(dim_);
  if (what.empty() && !AllFinite(emb_grad_.data(), emb_values)) {
    const size_t i = FirstNonfinite(emb_grad_.data(), emb_values);
    what = "the embedding gradient of key " +
           std::to_string(staged.unique_keys[i / static_cast<size_t>(dim_)]) + " is " +
           std::to_string(emb_grad_[i]);
  }
  if (what.empty()) return Status::OK();
  const int64_t into_epoch = staged.epoch == trained_epoch_ ? trained_in_epoch_ : 0;
  const std::string where =
      "worker " + std::to_string(rank_) + ", epoch " + std::to_string(staged.epoch + 1) +
      ", batch " + std::to_string(started_ + 1) + " (examples " + std::to_string(into_epoch) +
      " to " + std::to_string(into_epoch + staged.batch.num_examples) +
      " of the epoch in this worker's share)";
  if (config_.server().nonfinite_gradients() == config::ServerConfig::SKIP_ROWS) {
    ++nonfinite_batches_;
    LOG_IF(WARNING,
           nonfinite_batches_ <= 10 || (nonfinite_batches_ & (nonfinite_batches_ - 1)) == 0)
        << where << ": " << what << "; pushed, the servers drop the non-finite rows"
        << (local_dense_ != nullptr ? " (no local dense step from this batch)" : "")
        << " (server.nonfinite_gradients: SKIP_ROWS; " << nonfinite_batches_ << " such batches)";
    return Status::OK();
  }
  return Status::InvalidArgument(where + ": " + what +
                                 "; nothing pushed (server.nonfinite_gradients: REJECT). Lower "
                                 "the learning rates, or set SKIP_ROWS to train on past it");
}

Status Trainer::MaybeReportProgress(bool force) {
  auto now = SteadyClock::now();
  double since = std::chrono::duration<double>(now - last_report_).count();
  if (!force && since < config_.train().progress_interval_sec()) return Status::OK();
  Message msg(wire::PROGRESS);
  wire::Progress* p = msg.meta.mutable_progress();
  p->set_examples(examples_);
  p->set_seconds(SecondsSince(train_start_));
  const int epoch = training_done_ ? config_.train().epochs() : trained_epoch_ + 1;
  p->set_epoch(epoch);
  if (examples_per_epoch_ >= 0) p->set_examples_per_epoch(examples_per_epoch_);
  for (size_t i = 0; i < loss_sum_.size(); ++i) {
    const double mean = loss_batches_ > 0 ? loss_sum_[i] / static_cast<double>(loss_batches_) : 0.0;
    const double auc = i < running_auc_.size() ? running_auc_[i].Auc() : std::nan("");
    p->add_loss_names(model_->loss_names()[i]);
    p->add_mean_loss(mean);
    p->add_running_auc(auc);
    if (loss_batches_ > 0) loss_metrics_[i]->Set(mean);
    auc_metrics_[i]->Set(auc);
    loss_sum_[i] = 0.0;
  }
  epoch_metric_->Set(epoch);
  if (since > 0) {
    examples_per_sec_metric_->Set(static_cast<double>(examples_ - last_report_examples_) / since);
  }
  last_report_examples_ = examples_;
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
  MTPS_ASSIGN_OR_RETURN(
      auto reader, ExampleReader::Open(data, DataSplit::kTest, rank_, num_workers_, bad_lines_));
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
  LOG(INFO) << "worker " << rank_ << " scored " << examples << " held-out examples; skipped "
            << bad_lines_->skipped()
            << " malformed data lines (data.max_bad_lines = " << bad_lines_->max_bad_lines() << ")";

  Message msg(wire::EVAL_REPORT);
  wire::EvalReport* r = msg.meta.mutable_eval_report();
  if (const uint64_t counter = config_.train().counter_key(); counter != 0 && rank_ == 0) {
    // The exactly-once oracle: read the counter row back from its server.
    PendingPull pull;
    std::vector<uint64_t> key{counter};
    std::vector<float> row(static_cast<size_t>(dim_));
    MTPS_RETURN_IF_ERROR(
        kv_->StartPull(key, /*create_missing=*/false, /*pull_dense=*/false, &pull));
    MTPS_RETURN_IF_ERROR(kv_->FinishPull(&pull, row.data(), nullptr));
    // The row started within +-embedding_init_scale of 0.
    r->set_counter_value(static_cast<int64_t>(std::llround(row[0])));
    LOG(INFO) << "counter key " << counter << ": " << row[0] << " (pushes applied)";
  }
  // Exactly-once bookkeeping (summary.json "updates"); a resumed worker
  // counts this life's pushes, batches over the whole job.
  r->set_pushes_acknowledged(kv_->push_requests_acknowledged());
  r->set_pushes_resent(kv_->push_requests_resent());
  r->set_batches_acknowledged(clock());
  r->set_bad_lines_skipped(bad_lines_->skipped());
  r->set_train_examples(examples_);
  r->set_train_seconds(seconds_before_ + (finished_before_ ? 0.0 : train_seconds));
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
