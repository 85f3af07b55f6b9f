// Rpc: request/response over a Transport for one thread.
//
// Stamps every outgoing request with a fresh request id, the sender's node
// id, the cluster epoch and its deadline; matches responses to requests;
// hands incoming requests to a handler. Outstanding requests are bounded by
// their deadlines: an entry leaves the table when its response arrives or its
// deadline passes, so bookkeeping never grows without bound.
// Not thread-safe: one Rpc (and its Transport) per thread.
#ifndef MTPS_COMMON_NET_RPC_H_
#define MTPS_COMMON_NET_RPC_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/transport.h"

namespace mtps {

class Rpc {
 public:
  // Called with each incoming request; answer it (now or later) with Reply.
  using RequestHandler = std::function<void(Incoming&& request)>;
  // Called once per async request: the response, or the error (its non-OK
  // status, DeadlineExceeded, or the send failure).
  using ResponseCallback = std::function<void(StatusOr<Message>&& response)>;

  Rpc(Transport* transport, int self_id) : transport_(transport), self_id_(self_id) {}

  void set_self_id(int id) { self_id_ = id; }
  int self_id() const { return self_id_; }
  void set_epoch(uint64_t epoch) { epoch_ = epoch; }
  uint64_t epoch() const { return epoch_; }
  // Runs `tick` from inside Poll (and so inside Wait) at most once per
  // `interval_ms`, and makes every Poll wake at least that often: a thread
  // blocked waiting for one response still sends its heartbeats.
  void set_tick(std::function<void()> tick, int64_t interval_ms) {
    tick_ = std::move(tick);
    tick_interval_ms_ = interval_ms;
    next_tick_ = SteadyClock::now();
  }

  // Requests that arrive before a handler is installed (a peer can learn of
  // this node from the scheduler before this node finishes joining) wait in
  // a bounded backlog and are served by the first Poll after installation.
  void set_request_handler(RequestHandler handler) { handler_ = std::move(handler); }
  // Runs from inside Poll each time the transport's Receive returns (with a
  // message, at a deadline, or woken by Transport::Wake from another thread):
  // the owner's chance to finish work other threads handed back, e.g. to
  // send the replies of a server's shard threads. Must not wait.
  void set_wake_handler(std::function<void()> handler) { wake_handler_ = std::move(handler); }
  Transport* transport() { return transport_; }

  // Sends a request to `peer`; the response is kept until Wait(id).
  StatusOr<uint64_t> Start(int peer, Message msg, int64_t timeout_ms);
  // Sends a request; `done` runs from inside Poll/Wait when it completes.
  Status StartAsync(int peer, Message msg, int64_t timeout_ms, ResponseCallback done);
  // Waits for the response of a request made with Start, serving other
  // traffic meanwhile; fails at the request's deadline. A response with a
  // non-OK status becomes that Status.
  StatusOr<Message> Wait(uint64_t id);
  // Forgets a request made with Start whose response is no longer wanted.
  void Cancel(uint64_t id) { pending_.erase(id); }
  // Start + Wait.
  StatusOr<Message> Call(int peer, Message msg, int64_t timeout_ms);
  // Serves traffic until `until`; returns early after at least one message
  // when `return_after_one`. Expired requests complete with DeadlineExceeded.
  // Returns at `until` even while messages keep arriving.
  void Poll(Deadline until, bool return_after_one = false);

  // Answers `request` with `response` (sets is_response, request id, op,
  // sender and epoch). Returns the transport's status.
  Status Reply(const Incoming& request, Message response);
  // Answers `request` with an error status and no payload.
  Status ReplyError(const Incoming& request, const Status& error);

  // True once the response of a Start request arrived or its deadline
  // passed (Wait then returns without blocking).
  bool Done(uint64_t id) const {
    auto it = pending_.find(id);
    return it == pending_.end() || it->second.completed;
  }
  size_t outstanding() const { return pending_.size(); }
  // Requests received while no handler was installed, waiting for one (a
  // test hook: lets a test wait for a request to arrive instead of sleeping).
  size_t waiting_for_handler() const { return backlog_.size(); }

 private:
  struct Pending {
    int peer;
    wire::Op op;
    Deadline deadline;
    ResponseCallback done;  // empty for Start/Wait requests
    bool completed = false;
    StatusOr<Message> result = Status::Internal("not completed");
  };

  StatusOr<uint64_t> SendRequest(int peer, Message msg, int64_t timeout_ms, ResponseCallback done);
  void Dispatch(Incoming&& in);
  void Complete(uint64_t id, StatusOr<Message>&& result);
  void ExpireOverdue();
  void MaybeTick();

  Transport* transport_;
  int self_id_;
  uint64_t epoch_ = 0;
  uint64_t next_request_id_ = 1;
  RequestHandler handler_;
  std::function<void()> wake_handler_;
  std::deque<Incoming> backlog_;  // requests waiting for a handler
  std::function<void()> tick_;
  int64_t tick_interval_ms_ = 0;
  SteadyClock::time_point next_tick_;
  bool in_tick_ = false;
  std::unordered_map<uint64_t, Pending> pending_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_RPC_H_
