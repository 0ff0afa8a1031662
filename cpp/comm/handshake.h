// The connection handshake: before a ring link carries any tensor, each end proves that it
// holds the job's secret, and both agree on the job id, the world size and who is who.
//
//   connector (rank c)                           acceptor (rank a, the ring's next rank)
//   HELLO {version, job_id, world, c, a, Nc}  ->
//                                             <-  CHALLENGE {Na, HMAC(secret, T("accept"))}
//   PROOF {HMAC(secret, T("connect"))}        ->
//                                             <-  WELCOME            (or REJECT {reason})
//
// with T(label) = label, job_id, world, c, a, Nc, Na (frame.h payload encoding) and Nc, Na
// 32 fresh random bytes each. On an encrypted ring (TcpOptions::encrypt) the HELLO ends with
// a u32 flags field (bit 0: encrypt; absent = 0) that the acceptor must match, and both ends
// derive that connection's two AES-256-GCM keys from the same transcript (DeriveLinkKeys): a proof is bound to both nonces, both ranks and the job, so it
// cannot be replayed on another link or job. Frames longer than 4 KiB, a wrong magic, a
// wrong kind, a job/world/rank mismatch or a wrong MAC end the handshake; the acceptor then
// drops that connection and keeps waiting for the rank it expects (tests/comm/test_faults.py).
// The acceptor side is a state machine without I/O (AcceptorHandshake), so that many
// incoming connections can be handshaken at once on one poll() loop (handshake_acceptor.h).
// Tests: tests/comm/test_handshake.py, tests/hostile/test_ring_setup.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "comm/deadline.h"
#include "comm/frame.h"
#include "comm/sha256.h"

namespace caffeonspark::comm {

struct JobIdentity {
  std::string job_id;
  std::string secret;
  int world_size = 1;
  int rank = 0;
  // Frames after the handshake are sealed (frame_cipher.h); copied from TcpOptions::encrypt,
  // the home of its default. Every rank must agree: the acceptor refuses a mismatch.
  bool encrypt = false;
};

// One connection's session keys, one per direction (zero when the ring is not encrypted).
struct LinkKeys {
  Digest to_acceptor{};   // seals what the connector sends
  Digest to_connector{};  // seals what the acceptor sends
};

// HMAC-SHA256(secret, T(label)) for two labels of their own: fresh per connection (the
// nonces), distinct per direction, never equal to a proof sent in the clear.
LinkKeys DeriveLinkKeys(const JobIdentity& me, int connector, int acceptor,
                        const std::string& connector_nonce, const std::string& acceptor_nonce);

constexpr uint32_t kHandshakeVersion = 1;
constexpr uint32_t kHandshakeMaxFrame = 4096;

// Runs the connector side on a connected socket; true when welcomed (then `keys` holds the
// connection's session keys when me.encrypt). False when the
// acceptor closed or reset the connection before its CHALLENGE: it may have dropped us
// among a flood of stray connections, so the caller connects again. Throws CommError (the
// acceptor cannot prove the secret, rejects us, or is not the rank we expect) or PeerTimeout.
bool HandshakeAsConnector(int fd, const JobIdentity& me, int acceptor_rank,
                          const std::string& acceptor_name, const Deadline& deadline,
                          LinkKeys* keys);

// The acceptor side, one complete frame at a time (the caller reads the frames, checking
// their magic and the kHandshakeMaxFrame limit, and sends the replies).
class AcceptorHandshake {
 public:
  enum class Step { kContinue, kAccepted, kRejected };
  // `me` must outlive this object; `who` names the connection in the reasons.
  AcceptorHandshake(const JobIdentity& me, int expected_rank, std::string who);
  // Takes the connection's next frame. `reply` receives the encoded frame to send back
  // (CHALLENGE, WELCOME or REJECT); with kRejected, `why` says why (for the timeout message).
  Step OnFrame(uint16_t kind, const std::string& payload, std::string* reply, std::string* why);
  // The HELLO arrived and matched this job, world and ranks.
  bool hello_done() const { return !my_nonce_.empty(); }
  // After kAccepted: the connection's session keys (zero unless me.encrypt).
  const LinkKeys& keys() const { return keys_; }

 private:
  Step OnHello(const std::string& payload, std::string* reply, std::string* why);
  Step OnProof(const std::string& payload, std::string* reply, std::string* why);
  Step Reject(const std::string& reason, std::string* reply, std::string* why) const;

  const JobIdentity* me_;
  int expected_rank_;
  std::string who_;
  std::string their_nonce_, my_nonce_;
  LinkKeys keys_;
};

// Why a handshake frame with this header is refused, as words that follow the peer's name
// (" does not speak ..."), or "" when it may be read.
std::string HandshakeFrameProblem(const FrameHeader& header);

// A frame's bytes: its header, then `payload`.
std::string EncodeFrame(FrameKind kind, const std::string& payload);

// Peer-supplied text made safe for an error message: bytes outside printable ASCII as \xNN,
// cut to `max_chars` (with "...").
std::string Printable(const std::string& text, size_t max_chars = 64);

// 32 random bytes from the kernel (getrandom).
std::string RandomBytes(size_t bytes);

}  // namespace caffeonspark::comm
