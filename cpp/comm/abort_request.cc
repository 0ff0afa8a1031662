#include "comm/abort_request.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "core/errors.h"

namespace caffeonspark::comm {

AbortRequest::AbortRequest() : wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  COS_CHECK(wake_.valid(), CommError, "eventfd(): ", ErrnoText(errno));
}

void AbortRequest::Request(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (reason_.empty()) reason_ = reason.empty() ? "abort requested" : reason;
  }
  requested_.store(true);
  const uint64_t one = 1;
  if (write(wake_.get(), &one, sizeof(one)) < 0) {
    // The counter is saturated: a wake-up is pending anyway.
  }
}

std::optional<std::string> AbortRequest::Take() {
  if (!requested_.load()) return std::nullopt;
  uint64_t count = 0;
  if (read(wake_.get(), &count, sizeof(count)) < 0) {
    // Nothing to drain: the wake-up was consumed already.
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return reason_;
}

}  // namespace caffeonspark::comm
