// Deadline: a point on the steady clock that every blocking comm call waits against.
// poll() takes milliseconds; PollMillis rounds up so a wait never ends before its deadline
// (no busy loop of zero-millisecond polls), capped so an int cannot overflow.
// Tests: through tests/comm/ (timeouts of the transport and the handshake).
#pragma once

#include <algorithm>
#include <chrono>

namespace caffeonspark::comm {

using Clock = std::chrono::steady_clock;

class Deadline {
 public:
  static Deadline After(double seconds) {
    Deadline d;
    d.at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(std::max(seconds, 0.0)));
    return d;
  }
  static Deadline At(Clock::time_point at) {
    Deadline d;
    d.at_ = at;
    return d;
  }
  Clock::time_point at() const { return at_; }
  bool Expired() const { return Clock::now() >= at_; }
  double SecondsLeft() const {
    return std::max(0.0, std::chrono::duration<double>(at_ - Clock::now()).count());
  }
  // Milliseconds until the deadline for poll(), rounded up, at most one minute.
  int PollMillis() const { return MillisUntil(at_); }
  static int MillisUntil(Clock::time_point at) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(at - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60000));
  }
  Deadline Earlier(const Deadline& other) const { return At(std::min(at_, other.at_)); }

 private:
  Clock::time_point at_{};
};

}  // namespace caffeonspark::comm
