// FaultInjectingTransport: a Transport decorator that drops, duplicates,
// delays and reorders the messages a process sends (requests and replies),
// for chaos runs and the fault tests (config: cluster.faults).
//
// Every outgoing message gets one decision, drawn from a generator seeded
// by (FaultOptions.seed, salt) — the salt is the sender's node id — in the
// order the process sends: the same seed replays the same schedule. A
// message is dropped with probability `drop`; otherwise sent twice with
// probability `duplicate`; each copy is held for a uniform random
// 0..delay_ms_max ms; with probability `reorder` it is also held back until
// the next message to the same destination has gone (or 50 ms passed).
// Held messages leave from inside Send, Reply and Receive (whose wait is cut
// short when one is due), so they need no thread of their own. Messages of
// ops outside FaultOptions.ops, and REGISTER requests and replies, are
// passed through untouched. Until Configure, everything passes through.
// A held message that cannot be delivered when it falls due (its peer is
// gone) is lost, as on a real network: it is counted and logged, never
// reported as the failure of whatever Send, Reply or Receive flushed it.
//
// Owned by one thread, like every Transport; Wake from any thread.
#ifndef MTPS_COMMON_NET_FAULT_TRANSPORT_H_
#define MTPS_COMMON_NET_FAULT_TRANSPORT_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/net/transport.h"
#include "proto/config.pb.h"
#include "proto/wire.pb.h"

namespace mtps {

struct FaultOptions {
  uint64_t seed = 1;
  double drop = 0;
  double duplicate = 0;
  double reorder = 0;
  int delay_ms_max = 0;
  std::set<wire::Op> ops;  // empty: every op
  bool active() const { return drop > 0 || duplicate > 0 || reorder > 0 || delay_ms_max > 0; }
};

// The faults config `faults` asks of a process of `role` (none when the
// config names other roles). Expects a checked config (CheckFaultConfig).
FaultOptions FaultOptionsFor(const config::FaultConfig& faults, wire::Role role);

// The problems of `faults`, each (field path, why): probabilities in
// [0, 1], delay_ms_max >= 0, ops and roles that exist. `field` is its path
// ("cluster.faults").
std::vector<std::pair<std::string, std::string>> CheckFaultConfig(const config::FaultConfig& faults,
                                                                  const std::string& field);

class FaultInjectingTransport : public Transport {
 public:
  // What was done to the messages sent since Configure.
  struct Counters {
    int64_t messages = 0;  // offered to Send or Reply
    int64_t dropped = 0;
    int64_t duplicated = 0;
    int64_t delayed = 0;  // held for a positive delay
    int64_t reordered = 0;
    int64_t undeliverable = 0;  // held, then refused by the inner transport
  };

  explicit FaultInjectingTransport(std::unique_ptr<Transport> inner);

  // Starts injecting `options`, drawn from (options.seed, salt).
  void Configure(const FaultOptions& options, uint64_t salt);
  const Counters& counters() const { return counters_; }
  // Messages still held (delayed or reordered).
  size_t held() const { return held_.size(); }

  StatusOr<int> Bind(const std::string& host, int port) override {
    return inner_->Bind(host, port);
  }
  void NamePeer(int peer, const std::string& name) override { inner_->NamePeer(peer, name); }
  Status Connect(int peer, const std::string& endpoint) override {
    return inner_->Connect(peer, endpoint);
  }
  Status Send(int peer, Message msg) override;
  Status Reply(const std::string& reply_to, Message msg) override;
  StatusOr<Incoming> Receive(Deadline deadline) override;
  void Wake() override { inner_->Wake(); }

 private:
  // Where a message goes: a connected peer (Send) or a requester (Reply).
  struct Destination {
    int peer = -1;
    std::string reply_to;
    bool operator<(const Destination& o) const {
      return peer != o.peer ? peer < o.peer : reply_to < o.reply_to;
    }
  };
  struct Held {
    SteadyClock::time_point delay_due;  // its delay is over
    SteadyClock::time_point due;        // leaves at the latest (reorder hold)
    uint64_t order;                     // ties keep the sending order
    Destination to;
    Message msg;
    bool behind_next = false;  // reorder: waits for the next message to `to`
  };

  Status Offer(Destination to, Message msg);
  Status Deliver(const Destination& to, Message msg);
  // Sends every held message that is due (or whose reorder partner left);
  // one the inner transport refuses is lost (counted in undeliverable).
  void FlushDue();
  double Uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

  std::unique_ptr<Transport> inner_;
  bool configured_ = false;
  FaultOptions options_;
  std::mt19937_64 rng_;
  uint64_t order_ = 0;
  std::vector<Held> held_;
  Counters counters_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_FAULT_TRANSPORT_H_
