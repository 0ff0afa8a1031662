#include "comm/handshake_acceptor.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

Clock::time_point After(Clock::time_point from, double seconds) {
  return from + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(std::max(seconds, 0.0)));
}

}  // namespace

// One incoming connection whose handshake is under way.
struct HandshakeAcceptor::Pending {
  Pending(Fd socket, std::string from_host, std::string name, Clock::time_point hello_deadline,
          Clock::time_point done_deadline, const JobIdentity& me, int expected_rank)
      : fd(std::move(socket)),
        host(std::move(from_host)),
        who(std::move(name)),
        hello_by(hello_deadline),
        done_by(done_deadline),
        shake(me, expected_rank, who) {}

  Fd fd;
  std::string host, who;
  Clock::time_point hello_by, done_by;
  AcceptorHandshake shake;
  std::string in;  // the frame being read: header, then payload
  size_t need = kFrameHeaderBytes;
  std::string out;        // reply bytes the socket has not taken yet
  bool welcomed = false;  // WELCOME queued: the connection is ours once `out` is sent
};

HandshakeAcceptor::HandshakeAcceptor(const Listener& listener, const JobIdentity& me,
                                     int expected_rank, double hello_seconds,
                                     double handshake_seconds)
    : listener_(listener),
      me_(me),
      expected_rank_(expected_rank),
      hello_seconds_(hello_seconds),
      handshake_seconds_(handshake_seconds) {}

HandshakeAcceptor::~HandshakeAcceptor() = default;

Fd HandshakeAcceptor::Run(const Deadline& deadline, int cancel_fd, LinkKeys* keys) {
  std::vector<pollfd> fds;
  for (;;) {
    ExpireOld();
    if (deadline.Expired()) return Fd();
    fds.assign({{listener_.fd(), POLLIN, 0}, {cancel_fd, POLLIN, 0}});
    for (const Pending& p : pending_) {
      const short events = p.welcomed ? POLLOUT : p.out.empty() ? POLLIN : POLLIN | POLLOUT;
      fds.push_back({p.fd.get(), events, 0});
    }
    const int ready = poll(fds.data(), fds.size(), PollMillis(deadline));
    if (ready < 0 && errno != EINTR) throw CommError(Msg("poll(): ", ErrnoText(errno)));
    if (ready <= 0) continue;
    if (fds[1].revents != 0) return Fd();
    // Backwards, so that erasing keeps the earlier entries matched to their pollfds.
    for (size_t i = pending_.size(); i-- > 0;) {
      if (fds[i + 2].revents == 0) continue;
      const Outcome outcome = Serve(pending_[i]);
      if (outcome == Outcome::kAccepted) {
        accepted_ = std::move(pending_[i].fd);
        accepted_keys_ = pending_[i].shake.keys();
      }
      if (outcome != Outcome::kOpen) pending_.erase(pending_.begin() + static_cast<long>(i));
      if (accepted_.valid()) break;
    }
    if (!accepted_.valid() && fds[0].revents != 0) AcceptSome();
    if (accepted_.valid()) {
      pending_.clear();  // the strays still waiting: closed, not counted as refused
      *keys = accepted_keys_;
      return std::move(accepted_);
    }
  }
}

void HandshakeAcceptor::AcceptSome() {
  for (size_t round = 0; round < kAcceptsPerRound; ++round) {
    std::string host, from;
    Fd fd = AcceptNow(listener_, &host, &from);
    if (!fd.valid()) return;
    ConfigureStream(fd.get(), 0);
    MakeRoomFor(host);
    const Clock::time_point now = Clock::now();
    pending_.emplace_back(std::move(fd), host, "the connection from " + from,
                          After(now, hello_seconds_), After(now, handshake_seconds_), me_,
                          expected_rank_);
    // A real peer's HELLO is usually here already: read it now, before more accepts can
    // make this connection the oldest one without a HELLO.
    const Outcome outcome = Serve(pending_.back());
    if (outcome == Outcome::kAccepted) {
      accepted_ = std::move(pending_.back().fd);
      accepted_keys_ = pending_.back().shake.keys();
    }
    if (outcome != Outcome::kOpen) pending_.pop_back();
    if (accepted_.valid()) return;
  }
}

void HandshakeAcceptor::MakeRoomFor(const std::string& host) {
  const bool full = pending_.size() >= kMaxPendingHandshakes;
  const size_t from_host = static_cast<size_t>(std::count_if(
      pending_.begin(), pending_.end(), [&](const Pending& p) { return p.host == host; }));
  if (!full && from_host < kMaxPendingPerHost) return;
  // Over the overall cap any host's connection may go; over the host's, only that host's.
  auto eligible = [&](const Pending& p) { return full || p.host == host; };
  auto victim = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
    return eligible(p) && !p.shake.hello_done();
  });
  if (victim == pending_.end()) victim = std::find_if(pending_.begin(), pending_.end(), eligible);
  Drop(static_cast<size_t>(victim - pending_.begin()),
       Msg("dropped to make room: ", full ? pending_.size() : from_host,
           full ? " connections" : " connections from its host",
           " were waiting for their handshake"));
}

HandshakeAcceptor::Outcome HandshakeAcceptor::Serve(Pending& p) {
  const Outcome flushed = Flush(p);
  if (flushed != Outcome::kOpen || p.welcomed) return flushed;
  return ReadFrames(p);
}

HandshakeAcceptor::Outcome HandshakeAcceptor::ReadFrames(Pending& p) {
  for (;;) {
    const size_t had = p.in.size();
    p.in.resize(p.need);
    const ssize_t got = recv(p.fd.get(), p.in.data() + had, p.need - had, 0);
    p.in.resize(had + static_cast<size_t>(std::max<ssize_t>(got, 0)));
    if (got == 0) {
      Refused(p.who + " closed the connection during the handshake");
      return Outcome::kClosed;
    }
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Outcome::kOpen;
      Refused(Msg("receiving from ", p.who, ": ", ErrnoText(errno)));
      return Outcome::kClosed;
    }
    if (p.in.size() < p.need) continue;
    const FrameHeader header = DecodeHeader(reinterpret_cast<const uint8_t*>(p.in.data()));
    if (p.need == kFrameHeaderBytes) {  // the header is complete: check it before the payload
      const std::string problem = HandshakeFrameProblem(header);
      if (!problem.empty()) {
        Refused(p.who + problem);
        return Outcome::kClosed;
      }
      p.need += header.length;
      if (header.length > 0) continue;
    }
    const std::string payload = p.in.substr(kFrameHeaderBytes);
    p.in.clear();
    p.need = kFrameHeaderBytes;
    std::string reply, why;
    const AcceptorHandshake::Step step = p.shake.OnFrame(header.kind, payload, &reply, &why);
    p.out += reply;
    if (step == AcceptorHandshake::Step::kRejected) {
      // The REJECT is a courtesy: one non-blocking try, then the connection goes.
      if (send(p.fd.get(), p.out.data(), p.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        // The peer may be gone already.
      }
      Refused(why);
      return Outcome::kClosed;
    }
    p.welcomed = step == AcceptorHandshake::Step::kAccepted;
    const Outcome flushed = Flush(p);
    if (flushed != Outcome::kOpen || p.welcomed) return flushed;
  }
}

HandshakeAcceptor::Outcome HandshakeAcceptor::Flush(Pending& p) {
  while (!p.out.empty()) {
    const ssize_t sent = send(p.fd.get(), p.out.data(), p.out.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      p.out.erase(0, static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Outcome::kOpen;
    Refused(Msg("sending to ", p.who, ": ", ErrnoText(errno)));
    return Outcome::kClosed;
  }
  return p.welcomed ? Outcome::kAccepted : Outcome::kOpen;
}

void HandshakeAcceptor::ExpireOld() {
  const Clock::time_point now = Clock::now();
  for (size_t i = pending_.size(); i-- > 0;) {
    const Pending& p = pending_[i];
    if (!p.shake.hello_done() && now >= p.hello_by) {
      Drop(i, Msg("sent no complete hello within ", hello_seconds_, " s of connecting"));
    } else if (now >= p.done_by) {
      Drop(i, Msg("did not finish the handshake within ", handshake_seconds_, " s"));
    }
  }
}

void HandshakeAcceptor::Drop(size_t index, const std::string& why) {
  Refused(pending_[index].who + ": " + why);
  pending_.erase(pending_.begin() + static_cast<long>(index));
}

void HandshakeAcceptor::Refused(const std::string& why) {
  ++refused_;
  if (listed_.size() < kListedRejections) listed_.push_back(why);
}

int HandshakeAcceptor::PollMillis(const Deadline& deadline) const {
  Clock::time_point wake = deadline.at();
  for (const Pending& p : pending_)
    wake = std::min(wake, p.shake.hello_done() ? p.done_by : std::min(p.hello_by, p.done_by));
  return Deadline::MillisUntil(wake);
}

std::string HandshakeAcceptor::RejectionNote() const {
  if (refused_ == 0) return std::string();
  std::string note = Msg("; ", refused_, refused_ == 1 ? " connection" : " connections",
                         " refused");
  if (listed_.size() < refused_) note += Msg(", the first ", listed_.size());
  for (size_t i = 0; i < listed_.size(); ++i) note += (i == 0 ? ": " : "; ") + listed_[i];
  return note;
}

}  // namespace caffeonspark::comm
