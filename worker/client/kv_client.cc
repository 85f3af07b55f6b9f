// Sliced, pipelined pulls and pushes (see worker/client/kv_client.h).
#include "worker/client/kv_client.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/cluster/partition.h"

namespace mtps {
namespace {

void ObserveSince(Histogram* h, SteadyClock::time_point start, SteadyClock::time_point end) {
  if (h != nullptr) h->Observe(std::chrono::duration<double>(end - start).count());
}

// Row i of `from` to row pos[i] of `to` (kScatter), or row pos[i] of `from`
// to row i of `to`, for i < n; pos null: row i to row i (one copy). A row
// copy of a size known at compile time is a few vector moves, of a run-time
// size a call to memcpy.
template <bool kScatter, size_t kDim>
void MoveRowsOf(const float* from, const uint32_t* pos, size_t n, size_t run_dim, float* to) {
  const size_t dim = kDim != 0 ? kDim : run_dim;
  if (pos == nullptr) {
    std::memcpy(to, from, n * dim * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    if constexpr (kScatter) {
      std::memcpy(to + pos[i] * dim, from + i * dim, dim * sizeof(float));
    } else {
      std::memcpy(to + i * dim, from + pos[i] * dim, dim * sizeof(float));
    }
  }
}

template <bool kScatter>
void MoveRows(const float* from, const uint32_t* pos, size_t n, size_t dim, float* to) {
  switch (dim) {
    case 8:
      return MoveRowsOf<kScatter, 8>(from, pos, n, dim, to);
    case 16:
      return MoveRowsOf<kScatter, 16>(from, pos, n, dim, to);
    case 32:
      return MoveRowsOf<kScatter, 32>(from, pos, n, dim, to);
    case 64:
      return MoveRowsOf<kScatter, 64>(from, pos, n, dim, to);
    default:
      return MoveRowsOf<kScatter, 0>(from, pos, n, dim, to);
  }
}

}  // namespace

KvClient::KvClient(Rpc* rpc, std::vector<int> server_ids, KvClientOptions options)
    : rpc_(rpc),
      server_ids_(std::move(server_ids)),
      options_(options),
      partitioner_(static_cast<int>(server_ids_.size())) {
  slice_keys_.resize(server_ids_.size());
  slice_counts_.resize(server_ids_.size());
  slice_positions_.resize(server_ids_.size());
}

void KvClient::SetPrimaries(std::vector<int> primaries) {
  CHECK_EQ(primaries.size(), server_ids_.size());
  server_ids_ = std::move(primaries);
  // What was on its way to a partition's old primary goes to the new one.
  rpc_->Reroute([this](const wire::Meta& meta) {
    const int p = meta.partition();
    return p >= 0 && p < static_cast<int>(server_ids_.size()) ? server_ids_[p] : -1;
  });
}

void KvClient::Slice(const std::vector<uint64_t>& keys) {
  const size_t n = server_ids_.size();
  CHECK_LE(keys.size(), size_t{UINT32_MAX});
  if (n == 1) {
    slice_counts_[0] = keys.size();
    slice_positions_[0].clear();
    slice_keys_[0] = PooledArray<uint64_t>{};
    if (keys.empty()) return;
    slice_keys_[0] = key_pool_.Acquire(keys.size());
    std::memcpy(slice_keys_[0].get(), keys.data(), keys.size() * sizeof(uint64_t));
    return;
  }
  // One hash per key: count each server's keys, then place them.
  server_of_.resize(keys.size());
  std::fill(slice_counts_.begin(), slice_counts_.end(), 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t s = static_cast<uint32_t>(partitioner_.ServerOf(keys[i]));
    server_of_[i] = s;
    ++slice_counts_[s];
  }
  for (size_t s = 0; s < n; ++s) {
    slice_keys_[s] =
        slice_counts_[s] > 0 ? key_pool_.Acquire(slice_counts_[s]) : PooledArray<uint64_t>{};
    slice_positions_[s].resize(slice_counts_[s]);
    slice_counts_[s] = 0;  // counted again while placing
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t s = server_of_[i];
    const size_t at = slice_counts_[s]++;
    slice_keys_[s][at] = keys[i];
    slice_positions_[s][at] = static_cast<uint32_t>(i);
  }
}

void KvClient::CancelAll(const std::vector<uint64_t>& ids) {
  for (uint64_t id : ids) {
    if (id != 0) rpc_->Cancel(id);
  }
}

Status KvClient::InitDense(const float* params) {
  int n = static_cast<int>(server_ids_.size());
  std::vector<uint64_t> ids;
  for (int s = 0; s < n; ++s) {
    DenseBlock b = DenseBlockOf(options_.num_params, s, n);
    Message msg(wire::INIT_DENSE);
    msg.meta.set_partition(s);
    msg.meta.set_dense_total(options_.num_params);
    msg.payloads.push_back(Payload::Copy(params + b.begin, static_cast<size_t>(b.size())));
    auto id = rpc_->Start(server_ids_[s], std::move(msg), options_.request_timeout_ms);
    if (!id.ok()) {
      CancelAll(ids);
      return id.status();
    }
    ids.push_back(id.value());
  }
  Status first_error;
  for (uint64_t id : ids) {
    auto r = rpc_->Wait(id);
    if (!r.ok() && first_error.ok()) first_error = r.status();
  }
  return first_error;
}

Status KvClient::StartPull(const std::vector<uint64_t>& keys, bool create_missing, bool want_dense,
                           PendingPull* pull) {
  MTPS_RETURN_IF_ERROR(push_error_);
  const int n = static_cast<int>(server_ids_.size());
  Slice(keys);
  pull->sparse_ids.assign(n, 0);
  pull->dense_ids.assign(n, 0);
  pull->counts.assign(slice_counts_.begin(), slice_counts_.end());
  pull->positions.resize(n);
  pull->started = SteadyClock::now();
  // Every request goes out before anything waits.
  for (int s = 0; s < n; ++s) {
    // The positions travel with the pull (a prefetched pull outlives the
    // next Slice); swapping keeps both buffers' capacity.
    pull->positions[s].swap(slice_positions_[s]);
    if (slice_counts_[s] > 0) {
      Message msg(wire::PULL_SPARSE);
      msg.meta.set_partition(s);
      msg.meta.set_create_missing(create_missing);
      // Zero-copy: ZeroMQ sends the slice's array, then it returns to the pool.
      msg.payloads.push_back(key_pool_.ToPayload(std::move(slice_keys_[s]), slice_counts_[s]));
      auto id = rpc_->Start(server_ids_[s], std::move(msg), options_.request_timeout_ms);
      if (!id.ok()) {
        Cancel(pull);
        return id.status();
      }
      pull->sparse_ids[s] = id.value();
    }
    if (want_dense && DenseBlockOf(options_.num_params, s, n).size() > 0) {
      Message msg(wire::PULL_DENSE);
      msg.meta.set_partition(s);
      auto id = rpc_->Start(server_ids_[s], std::move(msg), options_.request_timeout_ms);
      if (!id.ok()) {
        Cancel(pull);
        return id.status();
      }
      pull->dense_ids[s] = id.value();
    }
  }
  return Status::OK();
}

void KvClient::Cancel(PendingPull* pull) {
  CancelAll(pull->sparse_ids);
  CancelAll(pull->dense_ids);
  pull->sparse_ids.clear();
  pull->dense_ids.clear();
}

Status KvClient::FinishPull(PendingPull* pull, float* emb, float* dense) {
  const int n = static_cast<int>(server_ids_.size());
  const size_t dim = static_cast<size_t>(options_.dim);
  Status first_error;
  for (int s = 0; s < static_cast<int>(pull->sparse_ids.size()); ++s) {
    if (pull->sparse_ids[s] != 0) {
      const size_t count = pull->counts[s];
      const std::vector<uint32_t>& pos = pull->positions[s];
      SteadyClock::time_point arrived;
      auto r = rpc_->Wait(pull->sparse_ids[s], &arrived);
      if (r.ok()) ObserveSince(metrics_.pull_sparse, pull->started, arrived);
      Status st = r.ok() ? r->Expect({wire::F32}) : r.status();
      if (st.ok() && r->payloads[0].count() != count * dim) {
        st = Status::Corruption("server " + std::to_string(s) + " answered " +
                                std::to_string(r->payloads[0].count()) + " values for " +
                                std::to_string(count) + " keys of dim " + std::to_string(dim));
      }
      if (st.ok()) {
        MoveRows</*kScatter=*/true>(r->payloads[0].Data<float>(&scratch_),
                                    pos.empty() ? nullptr : pos.data(), count, dim, emb);
      } else if (first_error.ok()) {
        first_error = st;
      }
    }
    if (pull->dense_ids[s] != 0) {
      DenseBlock b = DenseBlockOf(options_.num_params, s, n);
      SteadyClock::time_point arrived;
      auto r = rpc_->Wait(pull->dense_ids[s], &arrived);
      if (r.ok()) ObserveSince(metrics_.pull_dense, pull->started, arrived);
      Status st = r.ok() ? r->Expect({wire::F32}) : r.status();
      if (st.ok() && static_cast<int64_t>(r->payloads[0].count()) != b.size()) {
        st = Status::Corruption(
            "server " + std::to_string(s) + " holds " + std::to_string(r->payloads[0].count()) +
            " dense parameters, this worker expects " + std::to_string(b.size()) +
            " (do all workers run the same model config?)");
      }
      if (st.ok()) {
        std::memcpy(dense + b.begin, r->payloads[0].Data<float>(&scratch_),
                    static_cast<size_t>(b.size()) * sizeof(float));
      } else if (first_error.ok()) {
        first_error = st;
      }
    }
  }
  pull->sparse_ids.clear();
  pull->dense_ids.clear();
  return first_error;
}

Status KvClient::Pull(const std::vector<uint64_t>& keys, bool create_missing, float* emb,
                      float* dense) {
  PendingPull pull;
  MTPS_RETURN_IF_ERROR(StartPull(keys, create_missing, dense != nullptr, &pull));
  return FinishPull(&pull, emb, dense);
}

Status KvClient::WaitForPushesAtMost(size_t limit) {
  Deadline deadline = Deadline::In(options_.request_timeout_ms);
  while (push_remaining_.size() > limit) {
    if (deadline.Expired()) {
      return Status::DeadlineExceeded(std::to_string(push_remaining_.size()) +
                                      " pushes still unanswered after " +
                                      std::to_string(options_.request_timeout_ms) + " ms");
    }
    // Each push has its own deadline, so this returns as answers or expiries come in.
    rpc_->Poll(deadline, /*return_after_one=*/true);
  }
  return push_error_;
}

Status KvClient::Push(const std::vector<uint64_t>& keys, const float* emb_grad,
                      const float* dense_grad) {
  MTPS_RETURN_IF_ERROR(push_error_);
  const int n = static_cast<int>(server_ids_.size());
  const size_t dim = static_cast<size_t>(options_.dim);
  // At most max_inflight_pushes Push calls (batches) unanswered, this one included.
  MTPS_RETURN_IF_ERROR(
      WaitForPushesAtMost(static_cast<size_t>(std::max(0, options_.max_inflight_pushes - 1))));
  Slice(keys);
  const int64_t seq = first_unacked_push_ + static_cast<int64_t>(push_remaining_.size());
  push_remaining_.push_back(0);
  const SteadyClock::time_point sent = SteadyClock::now();
  auto on_done_for = [this, seq, sent](Histogram* latency) {
    return [this, alive = std::weak_ptr<int>(alive_), seq, sent, latency](StatusOr<Message>&& r) {
      // The Rpc outlives the client: an answer after the client is gone
      // (a worker leaving after a failed batch) touches nothing of it.
      if (alive.expired()) return;
      if (r.ok()) {
        ++push_requests_acknowledged_;
        ObserveSince(latency, sent, SteadyClock::now());
      } else if (push_error_.ok()) {
        push_error_ = r.status();
      }
      --push_remaining_[static_cast<size_t>(seq - first_unacked_push_)];
      while (!push_remaining_.empty() && push_remaining_.front() == 0) {
        push_remaining_.pop_front();
        ++first_unacked_push_;
      }
    };
  };
  for (int s = 0; s < n; ++s) {
    const size_t count = slice_counts_[s];
    if (count > 0) {
      PooledArray<float> grads = grad_pool_.Acquire(count * dim);
      const std::vector<uint32_t>& pos = slice_positions_[s];
      MoveRows</*kScatter=*/false>(emb_grad, pos.empty() ? nullptr : pos.data(), count, dim,
                                   grads.get());
      Message msg(wire::PUSH_SPARSE);
      msg.meta.set_partition(s);
      // Zero-copy: ZeroMQ sends the slice's arrays, then they return to the pools.
      msg.payloads.push_back(key_pool_.ToPayload(std::move(slice_keys_[s]), count));
      msg.payloads.push_back(grad_pool_.ToPayload(std::move(grads), count * dim));
      MTPS_RETURN_IF_ERROR(rpc_->StartAsync(server_ids_[s], std::move(msg),
                                            options_.request_timeout_ms,
                                            on_done_for(metrics_.push_sparse)));
      ++push_remaining_.back();
    }
    DenseBlock b = DenseBlockOf(options_.num_params, s, n);
    if (dense_grad != nullptr && b.size() > 0) {
      Message msg(wire::PUSH_DENSE);
      msg.meta.set_partition(s);
      msg.payloads.push_back(Payload::Copy(dense_grad + b.begin, static_cast<size_t>(b.size())));
      MTPS_RETURN_IF_ERROR(rpc_->StartAsync(server_ids_[s], std::move(msg),
                                            options_.request_timeout_ms,
                                            on_done_for(metrics_.push_dense)));
      ++push_remaining_.back();
    }
  }
  // A push with nothing to send is complete at once.
  while (!push_remaining_.empty() && push_remaining_.front() == 0) {
    push_remaining_.pop_front();
    ++first_unacked_push_;
  }
  return Status::OK();
}

Status KvClient::Flush() { return WaitForPushesAtMost(0); }

}  // namespace mtps
