// Deadline: a point on the monotonic clock by which a wait must end.
//
// Every blocking wait in mtps takes one; what happens when it passes is
// defined by the caller (usually a DeadlineExceeded status).
#ifndef MTPS_COMMON_BASE_DEADLINE_H_
#define MTPS_COMMON_BASE_DEADLINE_H_

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace mtps {

using SteadyClock = std::chrono::steady_clock;

// A point on the steady clock by which a wait must end. A value type
// (immutable, thread-safe); the waiting code owns what happens at expiry.
class Deadline {
 public:
  explicit Deadline(SteadyClock::time_point at) : at_(at) {}
  // `ms` is clamped to +-kMaxMs, so a timeout from the wire (any int64)
  // cannot overflow the clock's nanoseconds.
  static Deadline In(int64_t ms) {
    ms = std::clamp<int64_t>(ms, -kMaxMs, kMaxMs);
    return Deadline(SteadyClock::now() + std::chrono::milliseconds(ms));
  }
  static constexpr int64_t kMaxMs = int64_t{100} * 365 * 24 * 3600 * 1000;  // 100 years
  static Deadline Now() { return Deadline(SteadyClock::now()); }

  SteadyClock::time_point at() const { return at_; }
  bool Expired() const { return SteadyClock::now() >= at_; }
  // Milliseconds left, rounded down, never negative. Not for a poll's
  // timeout (see PollTimeoutMs).
  int64_t RemainingMs() const {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at_ - SteadyClock::now());
    return std::max<int64_t>(0, left.count());
  }
  // The timeout in whole milliseconds for a poll that must not wake before
  // the deadline: what is left rounded up, 0 once it passed. (Rounded down, a
  // deadline under 1 ms away gives poll(0), and a caller that polls until the
  // deadline spins: up to 1 ms of CPU at every timer.)
  int64_t PollTimeoutMs() const {
    const auto left = at_ - SteadyClock::now();
    if (left <= SteadyClock::duration::zero()) return 0;
    return std::chrono::ceil<std::chrono::milliseconds>(left).count();
  }
  bool operator<(const Deadline& other) const { return at_ < other.at_; }
  static Deadline Earlier(const Deadline& a, const Deadline& b) { return a < b ? a : b; }

 private:
  SteadyClock::time_point at_;
};

// Seconds elapsed since `start` on the monotonic clock.
inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

}  // namespace mtps

#endif  // MTPS_COMMON_BASE_DEADLINE_H_
