// RequestWindow: what a receiver remembers of the requests it handled
// recently, so that a resent or duplicated request is recognised and
// answered without being applied twice (exactly-once pushes).
//
// Requests are keyed by (sender node id, sender incarnation, request id):
// a sender's ids only grow within one process life, and its incarnation
// (common/net/rpc.h) changes at every start, so keys of a restarted process
// never collide with its earlier life. Each request says below which id its
// sender has forgotten everything it sent to this receiver (Meta.done_below:
// answered or abandoned); the window drops those entries and treats any
// later copy of them as stale. The window is bounded three ways: that floor
// (in steady state a sender's entries are its requests in flight), a cap of
// ids per sender (beyond it the oldest go and the floor rises past them),
// an idle limit (a sender incarnation unheard of for max_idle_ms, such as a
// dead process, is dropped whole), and a cap of sender incarnations (beyond
// it the longest silent goes).
//
// An entry is in progress (handed to the application, no outcome yet) or
// done with an outcome: opaque bytes the owner records, e.g. a serialized
// reply to send again. Serialize keeps the done entries only: a checkpoint
// or a replica holds what was applied, never what was merely under way.
// Not thread-safe: its owner serialises access.
#ifndef MTPS_COMMON_NET_REQUEST_WINDOW_H_
#define MTPS_COMMON_NET_REQUEST_WINDOW_H_

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "common/base/deadline.h"
#include "common/base/status.h"

namespace mtps {

struct RequestKey {
  int32_t sender = -1;
  uint64_t incarnation = 0;
  uint64_t id = 0;
};

struct RequestWindowOptions {
  size_t max_ids_per_sender = size_t{1} << 16;
  size_t max_senders = 4096;
  int64_t max_idle_ms = 10 * 60 * 1000;
};

class RequestWindow {
 public:
  enum class Seen {
    kNew,         // not seen before: now recorded as in progress
    kInProgress,  // seen, no outcome yet (the original is being handled)
    kDone,        // seen and done: Outcome() holds what was recorded
    kStale,       // below the sender's floor: an old copy nobody waits for
  };
  struct Counters {
    int64_t evicted_idle = 0;      // sender incarnations dropped for silence
    int64_t evicted_overflow = 0;  // ids (per-sender cap) and senders (max_senders) dropped
  };

  explicit RequestWindow(RequestWindowOptions options = {}) : options_(options) {}

  // Looks `key` up for a request that arrived at `now` saying its sender has
  // forgotten every id below `done_below`, and raises that sender's floor.
  Seen Begin(const RequestKey& key, uint64_t done_below, SteadyClock::time_point now);
  // Records the outcome of `key` (done). Inserts it when absent, unless it
  // is below its sender's floor.
  void Finish(const RequestKey& key, std::string outcome);
  // Forgets `key`: it had no effect, so a resend may be handled anew.
  void Forget(const RequestKey& key);
  // The recorded outcome of a done request; nullptr otherwise.
  const std::string* Outcome(const RequestKey& key) const;

  // Entries (in progress and done) and sender incarnations held.
  size_t size() const { return entries_; }
  size_t senders() const { return senders_.size(); }
  const Counters& counters() const { return counters_; }

  // The done entries and floors (proto checkpoint.RequestWindowState).
  std::string Serialize() const;
  // Replaces the contents with a Serialize()d window; every restored sender
  // counts as heard of at `now`. A malformed one is a Corruption naming
  // `name` and why, and leaves the window empty.
  Status Restore(const std::string& data, const std::string& name, SteadyClock::time_point now);

 private:
  struct SenderKey {
    int32_t sender;
    uint64_t incarnation;
    bool operator==(const SenderKey& o) const {
      return sender == o.sender && incarnation == o.incarnation;
    }
  };
  struct SenderKeyHash {
    size_t operator()(const SenderKey& k) const {
      return std::hash<uint64_t>()(k.incarnation * 0x9E3779B97F4A7C15ULL ^
                                   static_cast<uint64_t>(static_cast<uint32_t>(k.sender)));
    }
  };
  struct Entry {
    bool done = false;
    std::string outcome;
  };
  struct SenderState {
    uint64_t floor = 0;
    SteadyClock::time_point last_heard{};
    std::map<uint64_t, Entry> ids;  // ordered: the floor trims from the front
  };

  void RaiseFloor(SenderState* s, uint64_t floor);
  void EvictIdle(SteadyClock::time_point now);

  RequestWindowOptions options_;
  std::unordered_map<SenderKey, SenderState, SenderKeyHash> senders_;
  size_t entries_ = 0;
  SteadyClock::time_point next_idle_sweep_{};
  Counters counters_;
};

}  // namespace mtps

#endif  // MTPS_COMMON_NET_REQUEST_WINDOW_H_
