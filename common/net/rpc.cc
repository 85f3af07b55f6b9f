// Request tracking, resends and receiver-side deduplication over a
// Transport (see common/net/rpc.h).
#include "common/net/rpc.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace mtps {
namespace {
// Requests kept while no handler is installed; beyond this they are refused.
constexpr size_t kMaxBacklog = 4096;
// The retransmission timeout before any round trip to a peer was measured.
constexpr int64_t kInitialTimeoutMs = 200;

bool Resendable(wire::Op op) {
  return op != wire::HEARTBEAT && op != wire::REGISTER && op != wire::PING;
}

// Ops the receiver holds until an event, not until it finished working.
bool Held(wire::Op op) {
  return op == wire::BARRIER || op == wire::CLOCK || op == wire::CHECKPOINT_READY ||
         op == wire::SNAPSHOT;
}

// Ops a receiver with dedupe on remembers (see Rpc::set_dedupe).
bool Deduplicated(wire::Op op) {
  return op != wire::HEARTBEAT && op != wire::REGISTER && op != wire::PING;
}

RequestKey KeyOf(const wire::Meta& meta) {
  return RequestKey{meta.sender(), meta.incarnation(), meta.request_id()};
}
}  // namespace

RetryPolicy RetryPolicyFrom(const config::RetryConfig& retry) {
  RetryPolicy p;
  p.min_interval_ms = retry.min_interval_ms();
  p.max_interval_ms = retry.max_interval_ms();
  p.max_resends = retry.max_resends();
  p.held_interval_ms = retry.held_interval_ms();
  return p;
}

uint64_t NewIncarnation() {
  std::random_device device;
  std::seed_seq seed{device(), device(), static_cast<unsigned>(getpid()),
                     static_cast<unsigned>(SteadyClock::now().time_since_epoch().count())};
  std::mt19937_64 rng(seed);
  uint64_t id = 0;
  while (id == 0) id = rng();
  return id;
}

int64_t Rpc::RetransmitTimeoutMs(int peer) const {
  int64_t rto = kInitialTimeoutMs;
  auto it = peers_.find(peer);
  if (it != peers_.end() && it->second.srtt_ms >= 0) {
    rto = static_cast<int64_t>(std::ceil(it->second.srtt_ms + 4 * it->second.rttvar_ms));
  }
  return std::clamp(rto, retry_.min_interval_ms,
                    std::max(retry_.min_interval_ms, retry_.max_interval_ms));
}

uint64_t Rpc::DoneBelow(int peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || it->second.outstanding.empty()) return next_request_id_;
  return *it->second.outstanding.begin();
}

StatusOr<uint64_t> Rpc::SendRequest(int peer, Message msg, int64_t timeout_ms,
                                    ResponseCallback done) {
  CHECK_GT(timeout_ms, 0) << "every request needs a deadline";
  uint64_t id = next_request_id_++;
  wire::Op op = msg.meta.op();
  msg.meta.set_request_id(id);
  msg.meta.set_sender(self_id_);
  msg.meta.set_incarnation(incarnation_);
  msg.meta.set_cluster_epoch(epoch_);
  msg.meta.set_timeout_ms(timeout_ms);
  msg.meta.set_is_response(false);
  msg.meta.set_attempt(0);
  Peer& to = peers_[peer];
  msg.meta.set_done_below(to.outstanding.empty() ? id : *to.outstanding.begin());
  Pending p;
  p.peer = peer;
  p.op = op;
  p.deadline = Deadline::In(timeout_ms);
  p.done = std::move(done);
  p.resendable = retry_.max_resends > 0 && Resendable(op);
  p.held = Held(op);
  if (p.resendable) {
    p.retained.meta = msg.meta;
    for (Payload& payload : msg.payloads) p.retained.payloads.push_back(payload.Share());
  }
  Status s = transport_->Send(peer, std::move(msg));
  if (!s.ok()) return s;
  p.sent_at = SteadyClock::now();
  if (p.resendable) {
    p.interval_ms = p.held ? retry_.held_interval_ms : RetransmitTimeoutMs(peer);
    p.next_resend = p.sent_at + std::chrono::milliseconds(p.interval_ms);
  }
  to.outstanding.insert(id);
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

void Rpc::Forget(uint64_t id, const Pending& p) {
  auto it = peers_.find(p.peer);
  if (it != peers_.end()) it->second.outstanding.erase(id);
}

void Rpc::Reroute(const std::function<int(const wire::Meta&)>& route) {
  // Every moved request counts as outstanding to its new peer before any is
  // resent: each copy's done_below must not pass one moved after it.
  std::vector<uint64_t> moved;
  for (auto& [id, p] : pending_) {
    if (p.completed || !p.resendable) continue;
    const int to = route(p.retained.meta);
    if (to < 0 || to == p.peer) continue;
    Forget(id, p);
    p.peer = to;
    peers_[to].outstanding.insert(id);
    moved.push_back(id);
  }
  std::sort(moved.begin(), moved.end());
  for (uint64_t id : moved) Resend(id, &pending_.at(id));
}

void Rpc::Cancel(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Forget(id, it->second);
  pending_.erase(it);
}

StatusOr<Message> Rpc::Wait(uint64_t id, SteadyClock::time_point* completed_at) {
  for (;;) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return Status::Internal("unknown request id " + std::to_string(id));
    if (it->second.completed) {
      if (completed_at != nullptr) *completed_at = it->second.completed_at;
      StatusOr<Message> result = std::move(it->second.result);
      pending_.erase(it);
      return result;
    }
    Poll(it->second.deadline, /*return_after_one=*/true);
    ServiceTimers();
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
  // No more resends: the answer (or the verdict) is in.
  Forget(id, it->second);
  it->second.retained = Message();
  it->second.next_resend = SteadyClock::time_point::max();
  if (it->second.done) {
    ResponseCallback done = std::move(it->second.done);
    pending_.erase(it);
    done(std::move(result));
  } else {
    it->second.completed = true;
    it->second.completed_at = SteadyClock::now();
    it->second.result = std::move(result);
  }
}

void Rpc::SampleRoundTrip(const Pending& p) {
  // Karn: a resent request's answer may belong to any copy, so it says
  // nothing about the round trip; held requests wait for events.
  if (p.resends > 0 || p.held) return;
  const double sample =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - p.sent_at).count();
  Peer& peer = peers_[p.peer];
  if (peer.srtt_ms < 0) {
    peer.srtt_ms = sample;
    peer.rttvar_ms = sample / 2;
  } else {
    peer.rttvar_ms = 0.75 * peer.rttvar_ms + 0.25 * std::abs(peer.srtt_ms - sample);
    peer.srtt_ms = 0.875 * peer.srtt_ms + 0.125 * sample;
  }
}

void Rpc::RestartTimersBehind(int peer, uint64_t answered) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  const std::set<uint64_t>& outstanding = it->second.outstanding;
  auto behind = outstanding.upper_bound(answered);
  if (behind == outstanding.end()) return;
  const auto now = SteadyClock::now();
  const int64_t rto = RetransmitTimeoutMs(peer);
  for (; behind != outstanding.end(); ++behind) {
    auto p = pending_.find(*behind);
    if (p == pending_.end()) continue;
    Pending& r = p->second;
    // A resent request keeps its backoff; a held one its fixed interval.
    if (r.completed || !r.resendable || r.held || r.resends > 0 || r.answered_stale) continue;
    r.interval_ms = rto;
    r.next_resend = now + std::chrono::milliseconds(rto);
  }
}

void Rpc::Resend(uint64_t id, Pending* p) {
  Message copy;
  copy.meta = p->retained.meta;
  copy.meta.set_timeout_ms(std::max<int64_t>(1, p->deadline.RemainingMs()));
  copy.meta.set_attempt(p->resends + 1);
  copy.meta.set_done_below(DoneBelow(p->peer));
  copy.meta.set_cluster_epoch(epoch_);
  for (Payload& payload : p->retained.payloads) copy.payloads.push_back(payload.Share());
  Status s = transport_->Send(p->peer, std::move(copy));
  ++p->resends;
  if (s.ok()) {
    ++counters_.resent;
    ++resent_by_op_[static_cast<size_t>(p->op) % kOps];
  } else {
    VLOG(1) << "cannot resend " << wire::Op_Name(p->op) << " request " << id << ": " << s;
  }
  if (p->resends >= retry_.max_resends && !p->held) {
    p->next_resend = SteadyClock::time_point::max();  // budget spent: wait for the deadline
    return;
  }
  if (!p->held) p->interval_ms = std::min(2 * p->interval_ms, retry_.max_interval_ms);
  p->next_resend = SteadyClock::now() + std::chrono::milliseconds(p->interval_ms);
}

void Rpc::ServiceTimers() {
  const auto now = SteadyClock::now();
  std::vector<uint64_t> expired;
  for (auto& [id, p] : pending_) {
    if (p.completed) continue;
    if (p.deadline.Expired()) {
      expired.push_back(id);
    } else if (now >= p.next_resend) {
      Resend(id, &p);
    }
  }
  for (uint64_t id : expired) {
    // An earlier callback of this loop may have completed or cancelled it.
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.completed) continue;
    const Pending& p = it->second;
    std::string what = wire::Op_Name(p.op) + " request " + std::to_string(id) + " to node " +
                       std::to_string(p.peer) + " got no response before its deadline";
    if (p.resends > 0) what += " (sent " + std::to_string(p.resends + 1) + " times)";
    Complete(id, Status::DeadlineExceeded(what));
  }
}

bool Rpc::AdmitRequest(const Incoming& in) {
  const wire::Meta& meta = in.msg.meta;
  if (!dedupe_ || !Deduplicated(meta.op()) || meta.incarnation() == 0) return true;
  const RequestKey key = KeyOf(meta);
  switch (window_.Begin(key, meta.done_below(), SteadyClock::now())) {
    case RequestWindow::Seen::kNew:
      return true;
    case RequestWindow::Seen::kInProgress:
      ++counters_.duplicates_dropped;
      return false;
    case RequestWindow::Seen::kStale:
      ++counters_.stale_dropped;
      return false;
    case RequestWindow::Seen::kDone: {
      ++counters_.answered_again;
      Message again;
      if (!again.meta.ParseFromString(*window_.Outcome(key))) return false;
      Status s = transport_->Reply(in.reply_to, std::move(again));
      if (!s.ok()) VLOG(1) << "cannot answer a copy of request " << key.id << ": " << s;
      return false;
    }
  }
  return false;
}

void Rpc::Dispatch(Incoming&& in) {
  if (!in.reply_to.empty()) {
    if (in.msg.meta.is_response()) {
      LOG(WARNING) << "dropping a response that arrived as a request (op "
                   << wire::Op_Name(in.msg.meta.op()) << ")";
      return;
    }
    if (authorizer_) {
      Status allowed = authorizer_(in);
      if (!allowed.ok()) {
        LOG(WARNING) << "refused " << wire::Op_Name(in.msg.meta.op()) << " claiming node "
                     << in.msg.meta.sender() << ": " << allowed.message();
        ReplyError(in, allowed);
        return;
      }
    }
    if (!AdmitRequest(in)) return;
    if (handler_ && !holding_requests_) {
      handler_(std::move(in));
    } else if (backlog_.size() < kMaxBacklog) {
      backlog_.push_back(std::move(in));
    } else if (holding_requests_) {
      // Busy: dropped unanswered (an answer would fail the request), to be
      // resent; a dedupe window must then take the copy as new.
      if (dedupe_ && Deduplicated(in.msg.meta.op()) && in.msg.meta.incarnation() != 0) {
        window_.Forget(KeyOf(in.msg.meta));
      }
      VLOG(1) << "busy: dropping " << wire::Op_Name(in.msg.meta.op()) << " from node "
              << in.msg.meta.sender();
    } else {
      ReplyError(in, Status::Unavailable("this node is not serving yet"));
    }
    return;
  }
  const wire::Meta& meta = in.msg.meta;
  uint64_t id = meta.request_id();
  // Any answer from the peer, even to a request given up on here, means it
  // got past that request.
  if (meta.is_response()) RestartTimersBehind(in.peer, id);
  auto it = pending_.find(id);
  if (!meta.is_response() || it == pending_.end() || it->second.peer != in.peer ||
      it->second.completed) {
    // Late (after its deadline), a second answer to a resent request, or
    // unsolicited: nobody waits for it.
    VLOG(1) << "dropping unmatched message " << id << " from node " << in.peer;
    return;
  }
  SampleRoundTrip(it->second);
  Status status = FromWireStatus(meta);
  if (status.code() == StatusCode::kStaleEpoch && it->second.resendable &&
      it->second.resends < retry_.max_resends) {
    // Resent (with the epoch of the moment) at its next resend time, which
    // later answers do not push back.
    it->second.answered_stale = true;
    VLOG(1) << wire::Op_Name(it->second.op) << " request " << id << ": " << status;
    return;
  }
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
  for (;;) {
    const bool got = PollOnce(until);
    if (got && return_after_one) return;
    if (until.Expired()) return;
  }
}

bool Rpc::PollOnce(Deadline until) {
  if (handler_ && !holding_requests_ && !backlog_.empty()) {
    // Requests that arrived before the handler, or while it held them.
    std::deque<Incoming> waiting;
    waiting.swap(backlog_);
    for (Incoming& in : waiting) handler_(std::move(in));
    return true;
  }
  MaybeTick();
  // Do not sleep past the earliest pending deadline or resend, or the next tick.
  Deadline wake = until;
  for (const auto& [id, p] : pending_) {
    if (p.completed) continue;
    wake = Deadline::Earlier(wake, p.deadline);
    if (p.next_resend < wake.at()) wake = Deadline(p.next_resend);
  }
  if (tick_) wake = Deadline::Earlier(wake, Deadline(next_tick_));
  auto in = transport_->Receive(wake);
  const bool got = in.ok();
  if (got) Dispatch(std::move(in).value());
  if (wake_handler_) wake_handler_();
  ServiceTimers();
  if (!got && in.status().code() != StatusCode::kDeadlineExceeded) {
    LOG(WARNING) << "receive failed: " << in.status();
    return true;  // Poll's return_after_one returns on a failure too
  }
  return got;
}

void Rpc::PollHoldingRequests(Deadline until, const std::function<bool()>& done) {
  const bool was_holding = holding_requests_;
  holding_requests_ = true;
  while (!done() && !until.Expired()) PollOnce(until);
  holding_requests_ = was_holding;
}

Status Rpc::Reply(const Incoming& request, Message response) {
  response.meta.set_op(request.msg.meta.op());
  response.meta.set_request_id(request.msg.meta.request_id());
  response.meta.set_is_response(true);
  response.meta.set_sender(self_id_);
  response.meta.set_cluster_epoch(epoch_);
  const wire::Meta& meta = request.msg.meta;
  if (dedupe_ && Deduplicated(meta.op()) && meta.incarnation() != 0) {
    const wire::StatusCode code = response.meta.status();
    if (code == wire::STALE_EPOCH || code == wire::UNAVAILABLE) {
      // Refused for now (a newer epoch, a busy receiver): a resend must be
      // handled anew, not answered with this refusal again.
      window_.Forget(KeyOf(meta));
    } else if (response.payloads.empty()) {
      window_.Finish(KeyOf(meta), response.meta.SerializeAsString());
    } else {
      window_.Forget(KeyOf(meta));
    }
  }
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
