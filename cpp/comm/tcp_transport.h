// TcpTransport: the ring over TCP. Rank r accepts one connection from its left neighbour
// r-1 and opens one to its right neighbour r+1 (for 2 ranks: two connections between the
// pair). Data flows only rightwards; the reverse direction of each connection carries
// heartbeats and failure notices, so a notice can always be sent without cutting a frame.
//
// Setup (ring_connect.h): the listener is bound first (its address goes to the rendezvous),
// then the accept and the connect run together until `timeout_seconds`; each side proves
// the job secret (handshake.h) before any data frame is read. Incoming connections are
// handshaken concurrently, each within `hello_seconds` / `handshake_seconds` of its own;
// those that fail are dropped and the wait goes on. The listener closes once the ring
// stands.
//
// Progress: one poll() over both sockets, TCP_NODELAY, large socket buffers; payload bytes
// move straight between the socket and the caller's buffer (writev of header + payload on
// send, recv into the posted buffer). poll() sleeps until a socket is ready, a heartbeat is
// due or a deadline passes: no busy waiting. With send_thread (the default) the data sends
// run on a FrameWriter thread, overlapping the receives and the reduction.
//
// Deadlines: every rank sends a heartbeat on each link every `heartbeat_seconds` while it
// runs a collective or Idle. A link this rank is waiting on (posted receive, or send the
// peer does not read) that brings nothing for `timeout_seconds` is a PeerTimeout naming
// that peer; EOF or a reset without the peer's goodbye is a CommError naming it ("closed
// the connection ... died?"). The first failure is sent as an abort notice to both
// neighbours, which relay it around the ring, so every rank fails naming the same peer.
// Frames above `max_frame_bytes`, a bad magic, an unexpected kind, or a data frame whose
// collective / size differs from the posted receive are CommErrors too.
//
// Encryption (`encrypt`, off by default): every frame after the handshake, in both
// directions, is sealed with AES-256-GCM under that connection's per-direction session
// keys (frame_cipher.h, handshake.h): the header is authenticated, the payload encrypted,
// a 16-byte tag follows it. A data segment's receive completes only once its tag verified;
// a heartbeat, abort or goodbye takes effect only then too. A frame that fails is a
// CommError naming the peer ("... frame from rank r (addr) failed authentication").
// Tests: tests/comm/test_allreduce.py, tests/comm/test_faults.py,
// tests/comm/test_encrypted_ring.py.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/abort_request.h"
#include "comm/deadline.h"
#include "comm/frame_writer.h"
#include "comm/handshake.h"
#include "comm/ring_connect.h"
#include "comm/socket.h"
#include "comm/transport.h"

namespace caffeonspark::comm {

struct TcpOptions {
  double timeout_seconds = 60;      // connect deadline and silence deadline of a link
  double heartbeat_seconds = 0;     // 0: min(1, timeout_seconds / 4)
  double hello_seconds = 2;         // an incoming connection's HELLO must be complete by then
  double handshake_seconds = 5;     // one incoming connection's handshake (capped by timeout)
  uint32_t max_frame_bytes = 64u << 20;
  int socket_buffer_bytes = 4 << 20;  // SO_SNDBUF / SO_RCVBUF; 0 = kernel autotuning
  bool send_thread = true;          // data sends on a writer thread (FrameWriter)
  bool encrypt = false;             // AES-256-GCM on every frame (needs libcrypto.so.3)
};

class TcpTransport final : public Transport {
 public:
  // Builds the ring (blocking, up to timeout_seconds). `addresses[i]` is rank i's listener.
  TcpTransport(Listener listener, JobIdentity me, std::vector<std::string> addresses,
               TcpOptions options);
  // Takes over a ring already built and authenticated by comm::ConnectRing (the transport
  // selection in connect_transport.h builds it first, then decides which transport runs).
  TcpTransport(RingSockets ring, JobIdentity me, std::vector<std::string> addresses,
               TcpOptions options);
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  int rank() const override { return me_.rank; }
  int world_size() const override { return me_.world_size; }
  std::string PeerName(int rank) const override;
  std::string Describe() const override { return me_.encrypt ? "tcp (AES-256-GCM)" : "tcp"; }
  void BeginCollective(Op op) override;
  Request PostSend(int peer, const void* data, size_t bytes) override;
  Request PostRecv(int peer, void* data, size_t bytes) override;
  void Wait(Request request) override;
  void WaitAll() override;
  size_t max_message_bytes() const override { return options_.max_frame_bytes; }
  void Idle(double seconds) override;
  double heartbeat_seconds() const override { return heartbeat_; }
  void Abort(const std::string& reason) override;
  void RequestAbort(const std::string& reason) override;
  void Close() override;
  bool failed() const override { return failed_; }

 private:
  struct InRecv {
    uint8_t* buffer;
    size_t bytes;
    uint16_t op;
    uint32_t seq;
  };
  struct Link {
    int peer = -1;
    Fd fd;
    std::unique_ptr<FrameWriter> writer;  // after fd: destroyed (stopped) before it
    uint64_t user_sends_posted = 0;
    std::deque<InRecv> in;
    uint64_t user_recvs_done = 0;
    // The incoming frame being read.
    uint8_t header[kFrameHeaderBytes];
    size_t header_got = 0;
    bool have_header = false, matched = false;
    FrameHeader current;
    size_t payload_got = 0;
    std::string control;               // an abort notice (encrypted link: any control frame)
    std::unique_ptr<FrameOpener> opener;  // encrypted link: verifies the incoming frames
    uint8_t tag[kTagBytes];            // a data frame's tag, read after its payload
    size_t tag_got = 0;
    std::string mismatch;              // encrypted link: a header error, reported once authentic
    Clock::time_point last_heard, interest_since;
    bool said_bye = false;             // the peer closed its communicator normally
  };
  enum Side { kLeft = 0, kRight = 1 };
  class WaitingForSends;

  void Init();
  void ConnectRing(Listener& listener);
  void Adopt(RingSockets& ring);
  bool HasUserWork(const Link& link) const;
  bool WantsRead(const Link& link) const;
  void Progress(Clock::time_point wake_by);
  void ReadSome(Link& link);
  // Handles a recv() result <= 0; true to retry, false to stop reading this link.
  bool RecvEnded(Link& link, ssize_t result);
  void StartFrame(Link& link);
  void MatchData(Link& link);
  void HandleAbort(Link& link);
  // An abort notice, or on an encrypted link any control frame, read in full.
  void ControlFrame(Link& link);
  // Fails the ring unless `tag` proves the current frame authentic.
  void Authenticate(Link& link, const uint8_t* tag);
  void FrameDone(Link& link);
  void LinkBroke(Link& link, int error);
  void SendHeartbeats(Clock::time_point now);
  void CheckLinks(Clock::time_point now);
  void CheckWriters();
  std::string During() const;   // "allreduce #12"
  std::string When() const;     // "during allreduce #12" / "after ..."
  [[noreturn]] void Fail(bool timeout, const std::string& text, int reporter, const Link* from);
  // A failure this rank detected itself (not a timeout).
  [[noreturn]] void Broken(const std::string& text, const Link* from);
  void NotifyPeers(bool timeout, const std::string& text, int reporter, const Link* except);
  void CloseLinks();
  void CheckUsable() const;
  void TakeAbortRequest();

  JobIdentity me_;
  std::vector<std::string> addresses_;
  TcpOptions options_;
  double heartbeat_ = 1;
  Link links_[2];
  Op op_ = Op::kNone;
  uint32_t seq_ = 0;
  uint64_t sends_posted_ = 0, recvs_posted_ = 0;
  bool failed_ = false, closed_ = false, error_is_timeout_ = false;
  std::string error_;
  AbortRequest abort_;                   // RequestAbort wakes the progress loop
  Fd sent_;                              // eventfd: a writer thread finished a frame / broke
};

}  // namespace caffeonspark::comm
