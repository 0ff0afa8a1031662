#include "comm/tcp_transport.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "comm/libcrypto.h"
#include "comm/ring_connect.h"
#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr uint32_t kAbortTimeoutFlag = 1;
constexpr size_t kMaxControlPayload = 64 * 1024;
constexpr size_t kMaxNoticeText = 4000;

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

TcpTransport::TcpTransport(Listener listener, JobIdentity me, std::vector<std::string> addresses,
                           TcpOptions options)
    : me_(std::move(me)), addresses_(std::move(addresses)), options_(options) {
  Init();
  ConnectRing(listener);
}

TcpTransport::TcpTransport(RingSockets ring, JobIdentity me, std::vector<std::string> addresses,
                           TcpOptions options)
    : me_(std::move(me)), addresses_(std::move(addresses)), options_(options) {
  Init();
  if (me_.world_size > 1) Adopt(ring);
}

void TcpTransport::Init() {
  COS_CHECK(me_.world_size >= 1 && me_.rank >= 0 && me_.rank < me_.world_size, ConfigError,
            "comm: rank ", me_.rank, " is not in [0, world_size=", me_.world_size, ")");
  COS_CHECK(static_cast<int>(addresses_.size()) == me_.world_size, ConfigError, "comm: ",
            addresses_.size(), " addresses for a world of ", me_.world_size, " ranks");
  COS_CHECK(!me_.secret.empty(), ConfigError, "comm: the job secret is empty");
  COS_CHECK(options_.timeout_seconds > 0, ConfigError, "comm: timeout must be positive, got ",
            options_.timeout_seconds);
  COS_CHECK(options_.max_frame_bytes >= 1024, ConfigError,
            "comm: max_frame_bytes must be at least 1024, got ", options_.max_frame_bytes);
  sent_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  COS_CHECK(sent_.valid(), CommError, "eventfd(): ", ErrnoText(errno));
  for (Link& link : links_) link.writer = std::make_unique<FrameWriter>(-1, false, -1);
  heartbeat_ = options_.heartbeat_seconds > 0 ? options_.heartbeat_seconds
                                              : std::min(1.0, options_.timeout_seconds / 4);
  for (const std::string& address : addresses_) Address::Parse(address);
  me_.encrypt = options_.encrypt;
  if (me_.encrypt && me_.world_size > 1) LibCrypto::Get();  // a missing library: before any peer
}

TcpTransport::~TcpTransport() {
  try {
    Close();
  } catch (const std::exception&) {
    // A destructor must not throw; the peers see the connections close.
  }
}

std::string TcpTransport::PeerName(int rank) const { return RankName(rank, addresses_); }

void TcpTransport::ConnectRing(Listener& listener) {
  if (me_.world_size == 1) {
    listener.Close();
    return;
  }
  RingSockets ring = comm::ConnectRing(listener, me_, addresses_, options_.timeout_seconds,
                                       options_.hello_seconds, options_.handshake_seconds);
  Adopt(ring);
}

void TcpTransport::Adopt(RingSockets& ring) {
  const Clock::time_point now = Clock::now();
  Fd* fds[2] = {&ring.left, &ring.right};
  const int peers[2] = {left(), right()};
  // This rank accepted its left link and connected its right one.
  const Digest* send_keys[2] = {&ring.left_keys.to_connector, &ring.right_keys.to_acceptor};
  const Digest* recv_keys[2] = {&ring.left_keys.to_acceptor, &ring.right_keys.to_connector};
  for (int side = 0; side < 2; ++side) {
    Link& link = links_[side];
    ConfigureStream(fds[side]->get(), options_.socket_buffer_bytes);
    link.fd = std::move(*fds[side]);
    link.peer = peers[side];
    std::unique_ptr<FrameSealer> sealer;
    if (me_.encrypt) {
      sealer = std::make_unique<FrameSealer>(*send_keys[side]);
      link.opener = std::make_unique<FrameOpener>(*recv_keys[side]);
    }
    link.writer = std::make_unique<FrameWriter>(
        link.fd.get(), side == kRight && options_.send_thread, sent_.get(), std::move(sealer));
    link.last_heard = link.interest_since = now;
  }
}

// ---- posting and waiting -------------------------------------------------------------

void TcpTransport::CheckUsable() const {
  if (failed_) {
    if (error_is_timeout_) throw PeerTimeout(error_);
    throw CommError(error_);
  }
  COS_CHECK(!closed_, CommError, PeerName(me_.rank), ": the communicator is closed");
}

void TcpTransport::BeginCollective(Op op) {
  TakeAbortRequest();
  CheckUsable();
  op_ = op;
  ++seq_;
}

bool TcpTransport::HasUserWork(const Link& link) const {
  return !link.in.empty() || link.user_sends_posted > link.writer->user_done();
}

std::string TcpTransport::During() const {
  return Msg(OpName(op_), " #", seq_);
}

std::string TcpTransport::When() const {
  if (seq_ == 0) return "before the first collective";
  const bool busy = HasUserWork(links_[kLeft]) || HasUserWork(links_[kRight]);
  return Msg(busy ? "during " : "after ", During());
}

Transport::Request TcpTransport::PostSend(int peer, const void* data, size_t bytes) {
  CheckUsable();
  Link& link = links_[kRight];
  COS_CHECK(me_.world_size > 1 && peer == link.peer, InternalError, "TcpTransport sends to ",
            "the right neighbour only (rank ", right(), "), not to rank ", peer);
  COS_CHECK(bytes <= options_.max_frame_bytes, InternalError, "a send of ", bytes,
            " bytes exceeds the frame limit of ", options_.max_frame_bytes);
  if (!link.fd.valid()) Broken(Msg(PeerName(peer), " left the job before ", During()), nullptr);
  if (!HasUserWork(link)) link.interest_since = Clock::now();
  ++link.user_sends_posted;
  link.writer->Push(OutFrame::Data(static_cast<uint16_t>(op_), seq_, data, bytes));
  if (!link.writer->threaded() && link.writer->error() != 0) LinkBroke(link, link.writer->error());
  return 2 * sends_posted_++;
}

Transport::Request TcpTransport::PostRecv(int peer, void* data, size_t bytes) {
  CheckUsable();
  Link& link = links_[kLeft];
  COS_CHECK(me_.world_size > 1 && peer == link.peer, InternalError, "TcpTransport receives ",
            "from the left neighbour only (rank ", left(), "), not from rank ", peer);
  COS_CHECK(bytes <= options_.max_frame_bytes, InternalError, "a receive of ", bytes,
            " bytes exceeds the frame limit of ", options_.max_frame_bytes);
  if (!HasUserWork(link)) link.interest_since = Clock::now();
  link.in.push_back(InRecv{static_cast<uint8_t*>(data), bytes, static_cast<uint16_t>(op_), seq_});
  return 2 * recvs_posted_++ + 1;
}

// Tells the right link's writer thread that this thread waits for its sends (so it wakes
// this thread's poll when one is done) while alive.
class TcpTransport::WaitingForSends {
 public:
  explicit WaitingForSends(FrameWriter& writer) : writer_(writer) { writer_.set_waiting(true); }
  ~WaitingForSends() { writer_.set_waiting(false); }
  WaitingForSends(const WaitingForSends&) = delete;
  WaitingForSends& operator=(const WaitingForSends&) = delete;

 private:
  FrameWriter& writer_;
};

void TcpTransport::Wait(Request request) {
  CheckUsable();
  const uint64_t index = request / 2;
  if (request % 2 == 0) {
    WaitingForSends waiting(*links_[kRight].writer);
    while (links_[kRight].writer->user_done() <= index) Progress(Clock::time_point::max());
    return;
  }
  while (links_[kLeft].user_recvs_done <= index) Progress(Clock::time_point::max());
}

void TcpTransport::WaitAll() {
  CheckUsable();
  WaitingForSends waiting(*links_[kRight].writer);
  while (HasUserWork(links_[kLeft]) || HasUserWork(links_[kRight]))
    Progress(Clock::time_point::max());
}

void TcpTransport::Idle(double seconds) {
  if (failed_ || closed_) return;
  try {
    Progress(Clock::now() + Seconds(seconds));
  } catch (const CommError&) {
    // Stored in error_; the next collective throws it.
  }
}

// ---- the progress loop ---------------------------------------------------------------

bool TcpTransport::WantsRead(const Link& link) const {
  // A data frame whose receive is not posted yet stays in the kernel until it is.
  const bool stalled = link.have_header &&
                       link.current.kind == static_cast<uint16_t>(FrameKind::kData) &&
                       link.in.empty();
  return !stalled;
}

void TcpTransport::Progress(Clock::time_point wake_by) {
  TakeAbortRequest();
  for (Link& link : links_) {
    if (HasUserWork(link) && !link.fd.valid()) {
      Fail(false, Msg(PeerName(link.peer), " left the job (closed its communicator) while this ",
                      "rank needs it for ", During()),
           me_.rank, nullptr);
    }
  }
  CheckWriters();
  // entries[0]: abort requests, entries[1]: writer-thread progress, then the links.
  pollfd entries[4] = {{abort_.fd(), POLLIN, 0}, {sent_.get(), POLLIN, 0}, {}, {}};
  Link* polled[4] = {nullptr, nullptr, nullptr, nullptr};
  int count = 2;
  Clock::time_point next = wake_by;
  for (Link& link : links_) {
    if (!link.fd.valid()) continue;
    short events = 0;
    if (WantsRead(link)) events |= POLLIN;
    if (!link.writer->threaded() && !link.writer->empty()) events |= POLLOUT;
    next = std::min(next, link.writer->last_sent() + Seconds(heartbeat_));
    if (HasUserWork(link)) {
      next = std::min(next, std::max(link.last_heard, link.interest_since) +
                                Seconds(options_.timeout_seconds));
    }
    if (events == 0) continue;
    entries[count] = pollfd{link.fd.get(), events, 0};
    polled[count++] = &link;
  }
  const int ready = poll(entries, count, Deadline::MillisUntil(next));
  if (ready < 0 && errno != EINTR) Broken(Msg("poll(): ", ErrnoText(errno)), nullptr);
  for (int i = 0; i < count && ready > 0; ++i) {
    const short got = entries[i].revents;
    if (got == 0) continue;
    if (i == 0) {
      TakeAbortRequest();
      continue;
    }
    if (i == 1) {
      uint64_t drained = 0;
      if (read(sent_.get(), &drained, sizeof(drained)) < 0) {
        // Drained by an earlier pass.
      }
      CheckWriters();
      continue;
    }
    Link& link = *polled[i];
    if ((got & (POLLOUT | POLLERR | POLLHUP)) && !link.writer->threaded() &&
        !link.writer->empty() && !link.writer->WriteNow()) {
      LinkBroke(link, link.writer->error());
    }
    if ((got & (POLLIN | POLLERR | POLLHUP)) && link.fd.valid() && WantsRead(link)) ReadSome(link);
  }
  const Clock::time_point now = Clock::now();
  SendHeartbeats(now);
  CheckLinks(now);
}

void TcpTransport::CheckWriters() {
  for (Link& link : links_) {
    if (link.fd.valid() && link.writer->error() != 0) LinkBroke(link, link.writer->error());
  }
}

void TcpTransport::ReadSome(Link& link) {
  while (link.fd.valid()) {
    if (!link.have_header) {
      const ssize_t got = recv(link.fd.get(), link.header + link.header_got,
                               kFrameHeaderBytes - link.header_got, 0);
      if (got <= 0) {
        if (RecvEnded(link, got)) continue;
        return;
      }
      link.last_heard = Clock::now();
      link.header_got += static_cast<size_t>(got);
      if (link.header_got == kFrameHeaderBytes) StartFrame(link);
      continue;
    }
    if (link.current.kind != static_cast<uint16_t>(FrameKind::kData)) {
      const size_t total = link.current.length + (link.opener ? kTagBytes : 0);
      const size_t want = total - link.payload_got;
      if (want > 0) {
        link.control.resize(total);
        const ssize_t got = recv(link.fd.get(), link.control.data() + link.payload_got, want, 0);
        if (got <= 0) {
          if (RecvEnded(link, got)) continue;
          return;
        }
        link.last_heard = Clock::now();
        link.payload_got += static_cast<size_t>(got);
      }
      if (link.payload_got == total) ControlFrame(link);
      continue;
    }
    // A data frame.
    if (link.in.empty()) return;
    if (!link.matched) MatchData(link);
    InRecv& target = link.in.front();
    if (link.payload_got < target.bytes) {
      const ssize_t got = recv(link.fd.get(), target.buffer + link.payload_got,
                               target.bytes - link.payload_got, 0);
      if (got <= 0) {
        if (RecvEnded(link, got)) continue;
        return;
      }
      link.last_heard = Clock::now();
      // Decrypted in place as it lands; unusable until the tag verified (below).
      if (link.opener) link.opener->Decrypt(target.buffer + link.payload_got, size_t(got));
      link.payload_got += static_cast<size_t>(got);
    }
    if (link.payload_got < target.bytes) continue;
    if (link.opener) {
      const ssize_t got =
          recv(link.fd.get(), link.tag + link.tag_got, kTagBytes - link.tag_got, 0);
      if (got <= 0) {
        if (RecvEnded(link, got)) continue;
        return;
      }
      link.last_heard = Clock::now();
      link.tag_got += static_cast<size_t>(got);
      if (link.tag_got < kTagBytes) continue;
      Authenticate(link, link.tag);
    }
    link.in.pop_front();
    ++link.user_recvs_done;
    FrameDone(link);
  }
}

void TcpTransport::FrameDone(Link& link) {
  link.have_header = link.matched = false;
  link.header_got = link.payload_got = link.tag_got = 0;
  link.mismatch.clear();
}

void TcpTransport::Authenticate(Link& link, const uint8_t* tag) {
  if (!link.opener->Verify(tag)) {
    Broken(Msg("a ", KindName(link.current.kind), " frame from ", PeerName(link.peer),
               " failed authentication ", When(), " (altered in transit, or not sealed with "
               "this connection's key): the encrypted ring stops"),
           &link);
  }
  if (!link.mismatch.empty()) Fail(false, link.mismatch, me_.rank, &link);
}

void TcpTransport::ControlFrame(Link& link) {
  const FrameKind kind = static_cast<FrameKind>(link.current.kind);
  if (link.opener) {
    const size_t length = link.current.length;
    link.opener->Decrypt(reinterpret_cast<uint8_t*>(link.control.data()), length);
    Authenticate(link, reinterpret_cast<const uint8_t*>(link.control.data()) + length);
    link.control.resize(length);
  }
  if (kind == FrameKind::kAbort) HandleAbort(link);  // fails: does not return
  if (kind == FrameKind::kBye) link.said_bye = true;
  FrameDone(link);
}

bool TcpTransport::RecvEnded(Link& link, ssize_t result) {
  if (result < 0 && errno == EINTR) return true;
  if (result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  LinkBroke(link, result == 0 ? 0 : errno);
  return false;
}

void TcpTransport::LinkBroke(Link& link, int error) {
  link.writer->Stop();
  link.writer->Clear();
  if (link.said_bye) {
    link.fd.Reset();  // the peer left on purpose; only a later use of this link is an error
    return;
  }
  const std::string how =
      error == 0 ? "closed the connection" : Msg("broke the connection (", ErrnoText(error), ")");
  const std::string text =
      Msg(PeerName(link.peer), " ", how, " without saying goodbye, ", When(),
          " (its process died or was killed?)");
  link.fd.Reset();
  // The peer may have closed because it failed first: give its notice, already on the way
  // round the ring from the other side, a moment to arrive so every rank names the same
  // culprit. An abort notice read here fails with its own text.
  Link& other = &link == &links_[kLeft] ? links_[kRight] : links_[kLeft];
  const Deadline grace = Deadline::After(std::min(0.25, options_.timeout_seconds / 4));
  while (other.fd.valid() && WantsRead(other) && !grace.Expired()) {
    pollfd entry{other.fd.get(), POLLIN, 0};
    if (poll(&entry, 1, grace.PollMillis()) > 0) ReadSome(other);
  }
  Fail(false, text, me_.rank, &link);
}

void TcpTransport::StartFrame(Link& link) {
  link.current = DecodeHeader(link.header);
  const FrameHeader& header = link.current;
  const std::string peer = PeerName(link.peer);
  if (header.magic != kFrameMagic)
    Broken(Msg(peer, " sent bytes that are not a caffeonspark frame (bad magic)"), &link);
  if (header.length > options_.max_frame_bytes) {
    Fail(false, Msg(peer, " sent a ", KindName(header.kind), " frame of ", header.length,
                    " bytes, over the limit of ", options_.max_frame_bytes, " bytes"),
         me_.rank, &link);
  }
  if (link.opener) link.opener->Begin(link.header);
  switch (static_cast<FrameKind>(header.kind)) {
    case FrameKind::kHeartbeat:
    case FrameKind::kBye:
      if (!link.opener) {  // plain: takes effect now; encrypted: once its tag verified
        if (header.kind == static_cast<uint16_t>(FrameKind::kBye)) link.said_bye = true;
        link.header_got = 0;
        return;
      }
      [[fallthrough]];
    case FrameKind::kAbort:
      if (header.length > kMaxControlPayload)
        Broken(Msg(peer, " sent an ", KindName(header.kind), " notice of ", header.length,
                   " bytes"),
               &link);
      link.have_header = true;
      link.payload_got = 0;
      return;
    case FrameKind::kData:
      if (&link != &links_[kLeft])
        Broken(Msg(peer, " sent data on the connection that carries data to it"), &link);
      link.have_header = true;
      link.matched = false;
      link.payload_got = 0;
      return;
    default:
      Fail(false, Msg(peer, " sent an unexpected ", KindName(header.kind), " frame (kind ",
                      header.kind, ")"),
           me_.rank, &link);
  }
}

void TcpTransport::MatchData(Link& link) {
  const InRecv& target = link.in.front();
  const FrameHeader& header = link.current;
  if (header.op != target.op || header.seq != target.seq) {
    std::string text =
        Msg(PeerName(link.peer), " is in ", OpName(static_cast<Op>(header.op)), " #", header.seq,
            " while this rank is in ", OpName(static_cast<Op>(target.op)), " #", target.seq,
            ": every rank must call the same collectives in the same order");
    // On an encrypted link the header is only proven genuine by the frame's tag: say so
    // once it verified (else the failed authentication is the error).
    if (!link.opener || header.length != target.bytes) Fail(false, text, me_.rank, &link);
    link.mismatch = std::move(text);
  }
  if (header.length != target.bytes) {
    Fail(false, Msg(PeerName(link.peer), " sent ", header.length, " bytes where this rank expects ",
                    target.bytes, " in ", During(), ": the buffers differ in size across ranks"),
         me_.rank, &link);
  }
  link.matched = true;
}

void TcpTransport::HandleAbort(Link& link) {
  uint32_t flags = 0, reporter = 0;
  std::string text;
  try {
    PayloadReader reader(link.control, PeerName(link.peer) + " abort notice");
    flags = reader.U32();
    reporter = reader.U32();
    text = reader.String(kMaxControlPayload);
  } catch (const CommError& error) {
    Fail(false, error.what(), me_.rank, &link);
  }
  Fail((flags & kAbortTimeoutFlag) != 0, text, static_cast<int>(reporter), &link);
}

void TcpTransport::SendHeartbeats(Clock::time_point now) {
  for (Link& link : links_) {
    if (!link.fd.valid() || !link.writer->empty()) continue;
    if (SecondsBetween(link.writer->last_sent(), now) < heartbeat_) continue;
    link.writer->Push(OutFrame::Control(FrameKind::kHeartbeat, std::string()));
    if (!link.writer->threaded() && link.writer->error() != 0)
      LinkBroke(link, link.writer->error());
  }
}

void TcpTransport::CheckLinks(Clock::time_point now) {
  for (Link& link : links_) {
    if (!HasUserWork(link)) continue;
    if (!link.fd.valid()) {
      Fail(false, Msg(PeerName(link.peer), " left the job (closed its communicator) while this ",
                      "rank needs it for ", During()),
           me_.rank, nullptr);
    }
    const Clock::time_point since = std::max(link.last_heard, link.interest_since);
    if (SecondsBetween(since, now) >= options_.timeout_seconds) {
      Fail(true, Msg(PeerName(link.peer), " sent nothing for ", SecondsBetween(since, now),
                     " s while ", PeerName(me_.rank), " waited for it in ", During(),
                     " (stalled, or unreachable; deadline ", options_.timeout_seconds, " s)"),
           me_.rank, nullptr);
    }
  }
}

// ---- failure, abort and close --------------------------------------------------------

void TcpTransport::Broken(const std::string& text, const Link* from) {
  Fail(false, text, me_.rank, from);
}

void TcpTransport::Fail(bool timeout, const std::string& text, int reporter, const Link* from) {
  if (!failed_) {
    failed_ = true;
    error_is_timeout_ = timeout;
    error_ = reporter == me_.rank ? text : Msg(text, " [reported by ", PeerName(reporter), "]");
    NotifyPeers(timeout, text, reporter, from);
    CloseLinks();
  }
  CheckUsable();
  throw InternalError("unreachable");
}

void TcpTransport::NotifyPeers(bool timeout, const std::string& text, int reporter,
                               const Link* except) {
  PayloadWriter notice;
  notice.U32(timeout ? kAbortTimeoutFlag : 0).U32(static_cast<uint32_t>(reporter));
  notice.String(text.substr(0, kMaxNoticeText));
  const Deadline linger = Deadline::After(std::min(1.0, options_.timeout_seconds / 2));
  for (Link& link : links_) {
    link.writer->Stop();
    if (&link == except || !link.fd.valid() || link.said_bye) continue;
    // A frame partly on the wire is finished first (the receiver could not parse past it).
    link.writer->FinishWith(OutFrame::Control(FrameKind::kAbort, notice.data()), linger);
  }
}

void TcpTransport::CloseLinks() {
  for (Link& link : links_) {
    link.writer->Stop();
    link.writer->Clear();
    link.fd.Reset();
  }
}

void TcpTransport::Abort(const std::string& reason) {
  if (failed_ || closed_) return;
  failed_ = true;
  error_ = Msg(PeerName(me_.rank), " aborted: ", reason);
  NotifyPeers(false, error_, me_.rank, nullptr);
  CloseLinks();
}

void TcpTransport::RequestAbort(const std::string& reason) { abort_.Request(reason); }

void TcpTransport::TakeAbortRequest() {
  if (const auto reason = abort_.Take()) {
    Abort(*reason);
    CheckUsable();
  }
}

void TcpTransport::Close() {
  if (closed_) return;
  closed_ = true;
  if (failed_ || me_.world_size == 1) {
    CloseLinks();
    return;
  }
  const Deadline linger = Deadline::After(std::min(0.2, options_.timeout_seconds / 2));
  for (Link& link : links_) {
    link.writer->Stop();
    if (!link.fd.valid()) continue;
    // FinishWith drops what was not started; a frame partly written (or, encrypted,
    // sealed) is finished first, so that the goodbye parses and verifies.
    link.writer->FinishWith(OutFrame::Control(FrameKind::kBye, std::string()), linger);
    shutdown(link.fd.get(), SHUT_WR);
    // Read what already arrived so close() ends the connection with a FIN, not a reset.
    char sink[4096];
    while (recv(link.fd.get(), sink, sizeof(sink), 0) > 0) {
    }
  }
  CloseLinks();
}

}  // namespace caffeonspark::comm
