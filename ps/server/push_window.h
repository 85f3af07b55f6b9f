// PushWindow: a server's memory of the pushes it applied, which makes
// resent and duplicated pushes exactly-once.
//
// The receive thread asks Begin for every push (and pull) it is about to
// queue: a copy of a request still queued or being served is dropped (its
// original will be answered), a copy of an applied push is answered OK
// without being applied again, a stale copy (below its sender's done_below)
// is dropped. Shard 0 serves every task of its server (sparse tasks go to
// every shard, dense ones to shard 0 alone), so it records each push it
// applies (Applied), in the order it serves them: its snapshot of the
// window (Serialize, taken by the kSnapshot task at its place in that
// order) holds exactly the pushes in that checkpoint's tables. A push that
// was not applied (expired in the queue, refused) is forgotten, so a resend
// of it may be applied; pulls are never recorded, only deduplicated while
// in flight.
// Thread-safe: the receive thread and shard 0 use it (one mutex).
#ifndef MTPS_PS_SERVER_PUSH_WINDOW_H_
#define MTPS_PS_SERVER_PUSH_WINDOW_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "common/net/request_window.h"

namespace mtps {

class PushWindow {
 public:
  struct Counts {
    int64_t applied = 0;             // pushes applied
    int64_t duplicates_dropped = 0;  // push copies not applied (answered or dropped)
    int64_t pulls_deduplicated = 0;  // pull copies dropped while the original ran
  };

  explicit PushWindow(RequestWindowOptions options = {}) : window_(options) {}

  // See the file comment; `push` tells which kind of request it is (for the counts).
  RequestWindow::Seen Begin(const RequestKey& key, uint64_t done_below, bool push) {
    std::lock_guard<std::mutex> lock(mu_);
    RequestWindow::Seen seen = window_.Begin(key, done_below, SteadyClock::now());
    if (seen != RequestWindow::Seen::kNew)
      ++(push ? counts_.duplicates_dropped : counts_.pulls_deduplicated);
    return seen;
  }
  // Shard 0: the push of `key` was applied.
  void Applied(const RequestKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    window_.Finish(key, std::string());
    ++counts_.applied;
  }
  // The request of `key` changed nothing (or was a pull): forget it.
  void Forget(const RequestKey& key) {
    std::lock_guard<std::mutex> lock(mu_);
    window_.Forget(key);
  }
  Counts counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return window_.size();
  }
  std::string Serialize() const {
    std::lock_guard<std::mutex> lock(mu_);
    return window_.Serialize();
  }
  Status Restore(const std::string& data, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return window_.Restore(data, name, SteadyClock::now());
  }

 private:
  mutable std::mutex mu_;
  RequestWindow window_;  // guarded by mu_
  Counts counts_;         // guarded by mu_
};

}  // namespace mtps

#endif  // MTPS_PS_SERVER_PUSH_WINDOW_H_
