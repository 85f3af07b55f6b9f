// Rpc: request/response over a Transport for one thread.
//
// Stamps every outgoing request with a fresh request id, the sender's node
// id and incarnation, the cluster epoch and its deadline; matches responses
// to requests; hands incoming requests to a handler. Outstanding requests
// are bounded by their deadlines: an entry leaves the table when its
// response arrives or its deadline passes, so bookkeeping never grows
// without bound.
//
// Resends (RetryPolicy). A request without an answer after its peer's
// retransmission timeout is sent again with the same request id (and the
// time left as its timeout), with exponential backoff, until it is answered,
// its deadline passes, or its resend budget is spent. The timeout adapts to
// the round trips measured to each peer (Jacobson/Karels, sampling only
// requests answered without a resend: Karn). A server serves most of a
// sender's requests in the order sent (not all: a replicated push waits for
// its backup, a dense request for one shard only), so a request queued
// behind others starts its wait when one sent before it is answered, as TCP
// restarts its timer on each ACK of new data (RFC 6298, 5.3): each answer
// from a peer restarts the timers of the requests sent to it after the
// answered one and not yet resent. A deep queue of big requests is then not
// resent while the peer keeps answering it. An answer out of order only
// delays a resend (by one timeout after the last older answer); a lost
// request still times out once the ones before it are answered. Requests a peer holds on
// purpose until an event (BARRIER, CLOCK, CHECKPOINT_READY, SNAPSHOT) are
// resent every held_interval_ms until their deadline. HEARTBEAT, REGISTER and PING are never
// resent. A resend is safe because receivers keep a RequestWindow: the
// servers for pushes (ps/server/server.h), and any Rpc with dedupe on (the
// scheduler) for the requests its handler serves: a copy of a request still
// being handled is dropped, a copy of an answered one gets the same answer
// again without reaching the handler. Every request also carries done_below
// (the lowest id to that peer still awaiting an answer), which trims the
// receiver's window.
//
// An answer of STALE_EPOCH to a resendable request does not complete it:
// the sender or the receiver has not yet heard of a new cluster epoch (a
// failover), so it is resent, stamped with the sender's epoch then, at the
// next resend time.
//
// The incarnation is random per Rpc (per process start): a restarted
// process's request ids never collide with its earlier life's.
// Not thread-safe: one Rpc (and its Transport) per thread.
#ifndef MTPS_COMMON_NET_RPC_H_
#define MTPS_COMMON_NET_RPC_H_

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>

#include "common/base/deadline.h"
#include "common/base/status.h"
#include "common/net/request_window.h"
#include "common/net/transport.h"
#include "proto/config.pb.h"

namespace mtps {

// When unanswered requests are resent (config: cluster.retry). A value type.
struct RetryPolicy {
  int64_t min_interval_ms = 20;
  int64_t max_interval_ms = 2000;
  int max_resends = 30;            // per request; 0: never resend
  int64_t held_interval_ms = 500;  // requests the peer holds on purpose
};

// The policy config cluster.retry asks for (a checked config).
RetryPolicy RetryPolicyFrom(const config::RetryConfig& retry);

// A fresh random incarnation id (never 0).
uint64_t NewIncarnation();

class Rpc {
 public:
  // Called with each incoming request; answer it (now or later) with Reply.
  using RequestHandler = std::function<void(Incoming&& request)>;
  // Called once per async request: the response, or the error (its non-OK
  // status, DeadlineExceeded, or the send failure).
  using ResponseCallback = std::function<void(StatusOr<Message>&& response)>;

  Rpc(Transport* transport, int self_id, uint64_t incarnation = NewIncarnation())
      : transport_(transport), self_id_(self_id), incarnation_(incarnation) {}

  void set_self_id(int id) { self_id_ = id; }
  int self_id() const { return self_id_; }
  uint64_t incarnation() const { return incarnation_; }
  void set_retry(const RetryPolicy& retry) { retry_ = retry; }
  const RetryPolicy& retry() const { return retry_; }
  // Receiver side: remember the requests handed to the handler (all but
  // REGISTER, HEARTBEAT and PING) and answer their copies (see the file
  // comment). A reply with payloads is not kept, nor a STALE_EPOCH or
  // UNAVAILABLE refusal: a copy arriving after it reaches the handler again.
  void set_dedupe(bool on) { dedupe_ = on; }

  // What resending and deduplication did (tests, logs, summary.json).
  struct Counters {
    int64_t resent = 0;              // resends, all ops
    int64_t duplicates_dropped = 0;  // copies of requests still being handled
    int64_t answered_again = 0;      // copies answered from the window
    int64_t stale_dropped = 0;       // copies below their sender's done_below
  };
  const Counters& counters() const { return counters_; }
  // Resends of requests of `op`.
  int64_t resent(wire::Op op) const {
    return op >= 0 && op < kOps ? resent_by_op_[static_cast<size_t>(op)] : 0;
  }
  // The retransmission timeout to `peer` now, in ms (tests and logs).
  int64_t RetransmitTimeoutMs(int peer) const;
  // The lowest request id to `peer` still awaiting an answer, or the next
  // id when none is (what requests to it carry as done_below).
  uint64_t DoneBelow(int peer) const;
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
  // Checks every incoming request before anything else sees it (dedupe, the
  // handler): a non-OK answer is sent back as the request's reply and the
  // request dropped. Used to bind a CURVE key to its node id.
  void set_authorizer(std::function<Status(const Incoming&)> authorizer) {
    authorizer_ = std::move(authorizer);
  }
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
  // non-OK status becomes that Status. With `completed_at`, also when the
  // response arrived (or the deadline passed): a round trip's end even when
  // Wait is called later (a prefetched pull).
  StatusOr<Message> Wait(uint64_t id, SteadyClock::time_point* completed_at = nullptr);
  // Sends every unanswered resendable request for which `route` names
  // another peer (>= 0) to that peer now, stamped with the current epoch:
  // after a failover moved what it asks for.
  void Reroute(const std::function<int(const wire::Meta&)>& route);

  // Forgets a request made with Start whose response is no longer wanted.
  void Cancel(uint64_t id);
  // Start + Wait.
  StatusOr<Message> Call(int peer, Message msg, int64_t timeout_ms);
  // Serves traffic until `until`; returns early after at least one message
  // when `return_after_one`. Expired requests complete with DeadlineExceeded.
  // Returns at `until` even while messages keep arriving.
  void Poll(Deadline until, bool return_after_one = false);
  // Like Poll, until `done()` holds or `until`, but every incoming request
  // waits in the backlog (served by the next Poll) instead of reaching the
  // handler: a handler that must wait for room in its own queues still
  // answers responses, resends, wakes and sends its heartbeats (the tick),
  // without taking on more work. Requests beyond the backlog's bound are
  // dropped (their senders resend).
  void PollHoldingRequests(Deadline until, const std::function<bool()>& done);

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
  // Requests the dedupe window remembers now (tests: done_below trims it).
  size_t remembered() const { return window_.size(); }
  // Requests received while no handler was installed, waiting for one (a
  // test hook: lets a test wait for a request to arrive instead of sleeping).
  size_t waiting_for_handler() const { return backlog_.size(); }

 private:
  static constexpr int kOps = 32;  // wire::Op values are below this
  struct Pending {
    int peer = -1;
    wire::Op op = wire::OP_UNSPECIFIED;
    Deadline deadline = Deadline::Now();
    ResponseCallback done;  // empty for Start/Wait requests
    bool completed = false;
    SteadyClock::time_point completed_at{};
    StatusOr<Message> result = Status::Internal("not completed");
    // Resending: the request as sent (payloads shared with the sent copy),
    // when it may be resent; when the next resend is due; resends so far.
    bool resendable = false;
    bool held = false;  // the peer holds it on purpose (fixed resend interval)
    Message retained;
    SteadyClock::time_point sent_at{};
    bool answered_stale = false;  // answered STALE_EPOCH: resent at next_resend
    SteadyClock::time_point next_resend = SteadyClock::time_point::max();
    int64_t interval_ms = 0;
    int resends = 0;
  };
  // Per peer: requests awaiting an answer (for done_below) and the round
  // trip estimate (ms; srtt < 0 before the first sample).
  struct Peer {
    std::set<uint64_t> outstanding;
    double srtt_ms = -1, rttvar_ms = 0;
  };

  StatusOr<uint64_t> SendRequest(int peer, Message msg, int64_t timeout_ms, ResponseCallback done);
  void Dispatch(Incoming&& in);
  // Receiver side with dedupe on: false when `in` is a copy (answered or dropped here).
  bool AdmitRequest(const Incoming& in);
  void Complete(uint64_t id, StatusOr<Message>&& result);
  // Resends what is due and completes what expired.
  void ServiceTimers();
  void Resend(uint64_t id, Pending* p);
  void Forget(uint64_t id, const Pending& p);
  void SampleRoundTrip(const Pending& p);
  // An answer to `answered` came from `peer`: the requests sent to it after
  // that one and never resent start their wait now.
  void RestartTimersBehind(int peer, uint64_t answered);
  void MaybeTick();
  // One receive (until a message, a wake-up, a timer or `until`) and what
  // follows it; returns whether a message arrived (or the receive failed).
  bool PollOnce(Deadline until);

  Transport* transport_;
  int self_id_;
  uint64_t incarnation_;
  RetryPolicy retry_;
  bool dedupe_ = false;
  RequestWindow window_;
  Counters counters_;
  std::array<int64_t, kOps> resent_by_op_{};
  std::unordered_map<int, Peer> peers_;
  uint64_t epoch_ = 0;
  uint64_t next_request_id_ = 1;
  RequestHandler handler_;
  std::function<void()> wake_handler_;
  std::function<Status(const Incoming&)> authorizer_;
  std::deque<Incoming> backlog_;   // requests waiting for a handler
  bool holding_requests_ = false;  // inside PollHoldingRequests
  std::function<void()> tick_;
  int64_t tick_interval_ms_ = 0;
  SteadyClock::time_point next_tick_;
  bool in_tick_ = false;
  std::unordered_map<uint64_t, Pending> pending_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_RPC_H_
