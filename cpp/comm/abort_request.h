// AbortRequest: how another thread asks a transport to abort (Transport::RequestAbort). The
// first reason wins; an eventfd (fd()) wakes the transport's poll, and the transport's own
// thread takes the request (Take) and aborts there, so the abort never races its links.
// Used by TcpTransport and UcxTransport. Tests: tests/comm/test_faults.py.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

#include "comm/socket.h"

namespace caffeonspark::comm {

class AbortRequest {
 public:
  AbortRequest();  // CommError when the eventfd cannot be made
  int fd() const { return wake_.get(); }
  // Any thread: keeps the first reason and wakes the poll on fd().
  void Request(const std::string& reason);
  // The transport's thread: the reason of a pending request (draining the wake-up), else
  // nothing.
  std::optional<std::string> Take();

 private:
  Fd wake_;
  std::atomic<bool> requested_{false};
  std::mutex mutex_;
  std::string reason_;
};

}  // namespace caffeonspark::comm
