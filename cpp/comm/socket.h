// POSIX TCP sockets for the comm layer: addresses "host:port", an owning descriptor, a
// listener, connect with a deadline (retrying while the peer is not listening yet), a
// non-blocking accept, and whole-buffer send/receive with a deadline for the handshake.
// Every descriptor is non-blocking and close-on-exec; every wait is a poll() with a
// deadline, never a spin. Errors are CommError / PeerTimeout naming `who` (the peer's rank
// and address).
// Tests: tests/comm/test_handshake.py, tests/comm/test_faults.py,
// tests/hostile/test_ring_setup.py.
#pragma once

#include <cstddef>
#include <string>

#include "comm/deadline.h"

namespace caffeonspark::comm {

// "host:port" (IPv4, hostname, or [IPv6]:port).
struct Address {
  std::string host;
  int port = 0;
  static Address Parse(const std::string& text);
  std::string ToString() const;
};

// Owns one file descriptor (-1 when empty).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(other.Release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// A bound, listening socket; port 0 picks a free port (address() tells which).
class Listener {
 public:
  static Listener Bind(const std::string& host, int port, int backlog = 64);
  const Address& address() const { return address_; }
  int fd() const { return fd_.get(); }
  void Close() { fd_.Reset(); }

 private:
  Fd fd_;
  Address address_;
};

// Connects to `to`, retrying with a growing pause (up to 100 ms) while the connection is
// refused, until `deadline`: then PeerTimeout naming `who`.
Fd ConnectBefore(const Address& to, const std::string& who, const Deadline& deadline);
// Accepts one connection that is already waiting, without waiting: an empty Fd when none
// is. `host` receives the peer's host, `from` its "host:port". Errors the kernel reports
// for one aborted connection are skipped; others are CommError.
Fd AcceptNow(const Listener& listener, std::string* host, std::string* from);

// TCP_NODELAY, and send/receive buffers of `buffer_bytes` each (0: leave the kernel's
// autotuning alone).
void ConfigureStream(int fd, int buffer_bytes);

// Whole-buffer I/O with a deadline (used by the handshake only; the transport runs its own
// poll loop). EOF and socket errors are CommError, the deadline PeerTimeout, naming `who`.
void SendAll(int fd, const void* data, size_t bytes, const std::string& who,
             const Deadline& deadline);
void RecvAll(int fd, void* data, size_t bytes, const std::string& who, const Deadline& deadline);
// The same, but false instead of a CommError when the peer closed or reset the connection
// (for RecvAllUnlessClosed: before the first byte), so the caller may connect again.
bool SendAllUnlessClosed(int fd, const void* data, size_t bytes, const std::string& who,
                         const Deadline& deadline);
bool RecvAllUnlessClosed(int fd, void* data, size_t bytes, const std::string& who,
                         const Deadline& deadline);

// errno as text.
std::string ErrnoText(int error);

}  // namespace caffeonspark::comm
