// Request tracking over a Transport (see common/net/rpc.h).
#include "common/net/rpc.h"

#include <vector>

namespace mtps {
namespace {
// Requests kept while no handler is installed; beyond this they are refused.
constexpr size_t kMaxBacklog = 4096;
}  // namespace

StatusOr<uint64_t> Rpc::SendRequest(int peer, Message msg, int64_t timeout_ms,
                                    ResponseCallback done) {
  CHECK_GT(timeout_ms, 0) << "every request needs a deadline";
  uint64_t id = next_request_id_++;
  wire::Op op = msg.meta.op();
  msg.meta.set_request_id(id);
  msg.meta.set_sender(self_id_);
  msg.meta.set_cluster_epoch(epoch_);
  msg.meta.set_timeout_ms(timeout_ms);
  msg.meta.set_is_response(false);
  Status s = transport_->Send(peer, std::move(msg));
  if (!s.ok()) return s;
  Pending p{peer, op, Deadline::In(timeout_ms), std::move(done)};
  pending_.emplace(id, std::move(p));
  return id;
}

StatusOr<uint64_t> Rpc::Start(int peer, Message msg, int64_t timeout_ms) {
  return SendRequest(peer, std::move(msg), timeout_ms, nullptr);
}

Status Rpc::StartAsync(int peer, Message msg, int64_t timeout_ms, ResponseCallback done) {
  CHECK(done) << "StartAsync needs a callback";
  auto id = SendRequest(peer, std::move(msg), timeout_ms, std::move(done));
  return id.status();
}

StatusOr<Message> Rpc::Wait(uint64_t id) {
  for (;;) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return Status::Internal("unknown request id " + std::to_string(id));
    if (it->second.completed) {
      StatusOr<Message> result = std::move(it->second.result);
      pending_.erase(it);
      return result;
    }
    Poll(it->second.deadline, /*return_after_one=*/true);
    ExpireOverdue();
  }
}

StatusOr<Message> Rpc::Call(int peer, Message msg, int64_t timeout_ms) {
  auto id = Start(peer, std::move(msg), timeout_ms);
  if (!id.ok()) return id.status();
  return Wait(id.value());
}

void Rpc::Complete(uint64_t id, StatusOr<Message>&& result) {
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.completed) return;
  if (it->second.done) {
    ResponseCallback done = std::move(it->second.done);
    pending_.erase(it);
    done(std::move(result));
  } else {
    it->second.completed = true;
    it->second.result = std::move(result);
  }
}

void Rpc::ExpireOverdue() {
  std::vector<uint64_t> expired;
  for (const auto& [id, p] : pending_) {
    if (!p.completed && p.deadline.Expired()) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    // An earlier callback of this loop may have completed or cancelled it.
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.completed) continue;
    const Pending& p = it->second;
    std::string what = wire::Op_Name(p.op) + " request " + std::to_string(id) + " to node " +
                       std::to_string(p.peer) + " got no response before its deadline";
    Complete(id, Status::DeadlineExceeded(what));
  }
}

void Rpc::Dispatch(Incoming&& in) {
  if (!in.reply_to.empty()) {
    if (in.msg.meta.is_response()) {
      LOG(WARNING) << "dropping a response that arrived as a request (op "
                   << wire::Op_Name(in.msg.meta.op()) << ")";
      return;
    }
    if (handler_) {
      handler_(std::move(in));
    } else if (backlog_.size() < kMaxBacklog) {
      backlog_.push_back(std::move(in));
    } else {
      ReplyError(in, Status::Unavailable("this node is not serving yet"));
    }
    return;
  }
  const wire::Meta& meta = in.msg.meta;
  uint64_t id = meta.request_id();
  auto it = pending_.find(id);
  if (!meta.is_response() || it == pending_.end() || it->second.peer != in.peer) {
    // Late (after its deadline) or unsolicited: nobody waits for it.
    VLOG(1) << "dropping unmatched message " << id << " from node " << in.peer;
    return;
  }
  Status status = FromWireStatus(meta);
  if (!status.ok()) {
    Complete(id, Status(status.code(), "node " + std::to_string(in.peer) + " answered " +
                                           wire::Op_Name(it->second.op) + ": " + status.message()));
  } else {
    Complete(id, std::move(in.msg));
  }
}

void Rpc::MaybeTick() {
  if (!tick_ || in_tick_ || SteadyClock::now() < next_tick_) return;
  next_tick_ = SteadyClock::now() + std::chrono::milliseconds(tick_interval_ms_);
  in_tick_ = true;  // the tick may itself send (never wait) through this Rpc
  tick_();
  in_tick_ = false;
}

void Rpc::Poll(Deadline until, bool return_after_one) {
  if (handler_ && !backlog_.empty()) {
    std::deque<Incoming> waiting;
    waiting.swap(backlog_);
    for (Incoming& in : waiting) handler_(std::move(in));
    if (return_after_one) return;
  }
  for (;;) {
    MaybeTick();
    // Do not sleep past the earliest pending deadline or the next tick.
    Deadline wake = until;
    for (const auto& [id, p] : pending_) {
      if (!p.completed) wake = Deadline::Earlier(wake, p.deadline);
    }
    if (tick_) wake = Deadline::Earlier(wake, Deadline(next_tick_));
    auto in = transport_->Receive(wake);
    if (in.ok()) Dispatch(std::move(in).value());
    if (wake_handler_) wake_handler_();
    ExpireOverdue();
    if (in.ok() && return_after_one) return;
    if (until.Expired()) return;
    if (!in.ok() && in.status().code() != StatusCode::kDeadlineExceeded) {
      LOG(WARNING) << "receive failed: " << in.status();
      if (return_after_one) return;
    }
  }
}

Status Rpc::Reply(const Incoming& request, Message response) {
  response.meta.set_op(request.msg.meta.op());
  response.meta.set_request_id(request.msg.meta.request_id());
  response.meta.set_is_response(true);
  response.meta.set_sender(self_id_);
  response.meta.set_cluster_epoch(epoch_);
  Status s = transport_->Reply(request.reply_to, std::move(response));
  if (!s.ok()) {
    LOG(WARNING) << "cannot answer " << wire::Op_Name(request.msg.meta.op()) << " from node "
                 << request.msg.meta.sender() << ": " << s;
  }
  return s;
}

Status Rpc::ReplyError(const Incoming& request, const Status& error) {
  Message response;
  response.meta.set_status(ToWireCode(error.code()));
  response.meta.set_status_message(error.message());
  return Reply(request, std::move(response));
}

}  // namespace mtps
