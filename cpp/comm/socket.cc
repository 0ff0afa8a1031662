#include "comm/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfoPtr Resolve(const Address& address, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(address.port);
  const char* host = address.host.empty() ? nullptr : address.host.c_str();
  const int status = getaddrinfo(host, port.c_str(), &hints, &found);
  COS_CHECK(status == 0 && found != nullptr, CommError, "cannot resolve '", address.ToString(),
            "': ", gai_strerror(status));
  return AddrInfoPtr(found);
}

int NewSocket(int family) {
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  COS_CHECK(fd >= 0, CommError, "socket(): ", ErrnoText(errno));
  return fd;
}

int Port(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
}

std::string Host(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr, text,
              sizeof(text));
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(storage).sin_addr, text,
              sizeof(text));
  }
  return text;
}

// Waits until `fd` reports one of `events` (or an error/hangup); false at the deadline.
bool WaitFor(int fd, short events, const Deadline& deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    const int ready = poll(&entry, 1, deadline.PollMillis());
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) throw CommError(Msg("poll(): ", ErrnoText(errno)));
    if (ready == 0 && deadline.Expired()) return false;
  }
}

}  // namespace

Address Address::Parse(const std::string& text) {
  const size_t colon = text.rfind(':');
  COS_CHECK(colon != std::string::npos && colon + 1 < text.size(), ConfigError, "address '",
            text, "' is not host:port");
  Address address;
  address.host = text.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']')
    address.host = address.host.substr(1, address.host.size() - 2);
  const std::string port = text.substr(colon + 1);
  COS_CHECK(port.find_first_not_of("0123456789") == std::string::npos && port.size() <= 5,
            ConfigError, "address '", text, "': port '", port, "' is not a number");
  address.port = std::stoi(port);
  COS_CHECK(address.port <= 65535, ConfigError, "address '", text, "': port out of range");
  return address;
}

std::string Address::ToString() const {
  if (host.find(':') != std::string::npos) return Msg("[", host, "]:", port);
  return Msg(host, ":", port);
}

void Fd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Listener Listener::Bind(const std::string& host, int port, int backlog) {
  Address wanted{host, port};
  AddrInfoPtr info = Resolve(wanted, true);
  Listener listener;
  listener.fd_ = Fd(NewSocket(info->ai_family));
  const int fd = listener.fd_.get();
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  COS_CHECK(bind(fd, info->ai_addr, info->ai_addrlen) == 0, CommError, "cannot listen on ",
            wanted.ToString(), ": bind(): ", ErrnoText(errno));
  COS_CHECK(listen(fd, backlog) == 0, CommError, "cannot listen on ", wanted.ToString(),
            ": listen(): ", ErrnoText(errno));
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  listener.address_ = Address{host.empty() ? Host(bound) : host, Port(bound)};
  return listener;
}

Fd ConnectBefore(const Address& to, const std::string& who, const Deadline& deadline) {
  AddrInfoPtr info = Resolve(to, false);
  int pause_ms = 5;
  std::string last_error = "no attempt";
  while (!deadline.Expired()) {
    Fd fd(NewSocket(info->ai_family));
    int status = connect(fd.get(), info->ai_addr, info->ai_addrlen);
    int error = status == 0 ? 0 : errno;
    if (error == EINPROGRESS) {
      if (!WaitFor(fd.get(), POLLOUT, deadline)) {
        last_error = "connection pending";
        break;
      }
      socklen_t length = sizeof(error);
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    }
    if (error == 0) return fd;
    last_error = ErrnoText(error);
    if (error != ECONNREFUSED && error != ECONNRESET && error != ETIMEDOUT &&
        error != EHOSTUNREACH && error != ENETUNREACH && error != EAGAIN) {
      throw CommError(Msg("cannot connect to ", who, ": ", last_error));
    }
    // Not listening yet (or the host is still coming up): pause, then try again.
    const int wait = std::min(pause_ms, deadline.PollMillis());
    if (wait > 0) poll(nullptr, 0, wait);
    pause_ms = std::min(pause_ms * 2, 100);
  }
  throw PeerTimeout(Msg(who, " did not accept a connection before the deadline (last error: ",
                        last_error, ")"));
}

Fd AcceptNow(const Listener& listener, std::string* host, std::string* from) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t length = sizeof(peer);
    const int fd = accept4(listener.fd(), reinterpret_cast<sockaddr*>(&peer), &length,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      *host = Host(peer);
      *from = Address{*host, Port(peer)}.ToString();
      return Fd(fd);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Fd();
    // accept(2): a connection that died in the queue reports its own error; skip it.
    if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN ||
        errno == ENETUNREACH || errno == EHOSTUNREACH || errno == EHOSTDOWN ||
        errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == ENONET)
      continue;
    throw CommError(Msg("accept() on ", listener.address().ToString(), ": ", ErrnoText(errno)));
  }
}

void ConfigureStream(int fd, int buffer_bytes) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (buffer_bytes > 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof(buffer_bytes));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes));
  }
}

namespace {

bool ClosedByPeer(int error) { return error == EPIPE || error == ECONNRESET; }

// The loops behind SendAll / RecvAll: false when `closed_ok` and the peer closed first.
bool SendLoop(int fd, const char* at, size_t bytes, const std::string& who,
              const Deadline& deadline, bool closed_ok) {
  while (bytes > 0) {
    const ssize_t sent = send(fd, at, bytes, MSG_NOSIGNAL);
    if (sent > 0) {
      at += sent;
      bytes -= static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, deadline))
        throw PeerTimeout(Msg(who, " did not read the handshake before the deadline"));
      continue;
    }
    if (closed_ok && ClosedByPeer(errno)) return false;
    throw CommError(Msg("sending to ", who, ": ", ErrnoText(errno)));
  }
  return true;
}

bool RecvLoop(int fd, char* at, size_t bytes, const std::string& who, const Deadline& deadline,
              bool closed_ok) {
  const size_t wanted = bytes;
  while (bytes > 0) {
    const ssize_t got = recv(fd, at, bytes, 0);
    if (got > 0) {
      at += got;
      bytes -= static_cast<size_t>(got);
      continue;
    }
    const bool first = bytes == wanted;
    if (got == 0) {
      if (closed_ok && first) return false;
      throw CommError(Msg(who, " closed the connection during the handshake"));
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFor(fd, POLLIN, deadline))
        throw PeerTimeout(Msg(who, " did not answer the handshake before the deadline"));
      continue;
    }
    if (closed_ok && first && ClosedByPeer(errno)) return false;
    throw CommError(Msg("receiving from ", who, ": ", ErrnoText(errno)));
  }
  return true;
}

}  // namespace

void SendAll(int fd, const void* data, size_t bytes, const std::string& who,
             const Deadline& deadline) {
  SendLoop(fd, static_cast<const char*>(data), bytes, who, deadline, false);
}

void RecvAll(int fd, void* data, size_t bytes, const std::string& who,
             const Deadline& deadline) {
  RecvLoop(fd, static_cast<char*>(data), bytes, who, deadline, false);
}

bool SendAllUnlessClosed(int fd, const void* data, size_t bytes, const std::string& who,
                         const Deadline& deadline) {
  return SendLoop(fd, static_cast<const char*>(data), bytes, who, deadline, true);
}

bool RecvAllUnlessClosed(int fd, void* data, size_t bytes, const std::string& who,
                         const Deadline& deadline) {
  return RecvLoop(fd, static_cast<char*>(data), bytes, who, deadline, true);
}

std::string ErrnoText(int error) { return Msg(std::strerror(error), " (errno ", error, ")"); }

}  // namespace caffeonspark::comm
