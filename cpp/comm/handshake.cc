#include "comm/handshake.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "comm/frame.h"
#include "comm/sha256.h"
#include "comm/socket.h"
#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr size_t kNonceBytes = 32;
constexpr size_t kMaxJobId = 256;

void SendFrame(int fd, FrameKind kind, const std::string& payload, const std::string& who,
               const Deadline& deadline) {
  FrameHeader header;
  header.kind = static_cast<uint16_t>(kind);
  header.length = static_cast<uint32_t>(payload.size());
  uint8_t bytes[kFrameHeaderBytes];
  EncodeHeader(header, bytes);
  std::string frame(reinterpret_cast<const char*>(bytes), kFrameHeaderBytes);
  frame += payload;
  SendAll(fd, frame.data(), frame.size(), who, deadline);
}

// Reads one handshake frame; its kind is returned, its payload stored in `payload`.
uint16_t ReadFrame(int fd, std::string* payload, const std::string& who,
                   const Deadline& deadline) {
  uint8_t bytes[kFrameHeaderBytes];
  RecvAll(fd, bytes, sizeof(bytes), who, deadline);
  const FrameHeader header = DecodeHeader(bytes);
  COS_CHECK(header.magic == kFrameMagic, CommError, who,
            " does not speak the caffeonspark protocol (bad frame magic)");
  COS_CHECK(header.length <= kHandshakeMaxFrame, CommError, who, " sent a handshake frame of ",
            header.length, " bytes (limit ", kHandshakeMaxFrame, ")");
  payload->assign(header.length, '\0');
  if (header.length > 0) RecvAll(fd, payload->data(), header.length, who, deadline);
  return header.kind;
}

void Expect(uint16_t kind, FrameKind wanted, const std::string& payload, const std::string& who) {
  if (kind == static_cast<uint16_t>(FrameKind::kReject)) {
    PayloadReader reader(payload, who);
    throw CommError(Msg(who, " rejected the handshake: ", reader.String(kHandshakeMaxFrame)));
  }
  COS_CHECK(kind == static_cast<uint16_t>(wanted), CommError, who, " sent a ", KindName(kind),
            " frame where the handshake expects ", KindName(static_cast<uint16_t>(wanted)));
}

Digest Proof(const JobIdentity& me, const char* label, int connector, int acceptor,
             const std::string& connector_nonce, const std::string& acceptor_nonce) {
  PayloadWriter transcript;
  transcript.String(label).String(me.job_id).U32(static_cast<uint32_t>(me.world_size));
  transcript.U32(static_cast<uint32_t>(connector)).U32(static_cast<uint32_t>(acceptor));
  transcript.Bytes(connector_nonce.data(), connector_nonce.size());
  transcript.Bytes(acceptor_nonce.data(), acceptor_nonce.size());
  return HmacSha256(me.secret, transcript.data().data(), transcript.data().size());
}

}  // namespace

std::string RandomBytes(size_t bytes) {
  std::string out(bytes, '\0');
  size_t filled = 0;
  while (filled < bytes) {
    const ssize_t got = getrandom(out.data() + filled, bytes - filled, 0);
    if (got < 0 && errno == EINTR) continue;
    COS_CHECK(got > 0, CommError, "getrandom(): ", ErrnoText(errno));
    filled += static_cast<size_t>(got);
  }
  return out;
}

void HandshakeAsConnector(int fd, const JobIdentity& me, int acceptor_rank,
                          const std::string& acceptor_name, const Deadline& deadline) {
  const std::string my_nonce = RandomBytes(kNonceBytes);
  PayloadWriter hello;
  hello.U32(kHandshakeVersion).String(me.job_id).U32(static_cast<uint32_t>(me.world_size));
  hello.U32(static_cast<uint32_t>(me.rank)).U32(static_cast<uint32_t>(acceptor_rank));
  hello.Bytes(my_nonce.data(), my_nonce.size());
  SendFrame(fd, FrameKind::kHello, hello.data(), acceptor_name, deadline);

  std::string payload;
  uint16_t kind = ReadFrame(fd, &payload, acceptor_name, deadline);
  Expect(kind, FrameKind::kChallenge, payload, acceptor_name);
  PayloadReader challenge(payload, acceptor_name + " challenge");
  std::string their_nonce(kNonceBytes, '\0');
  challenge.Bytes(their_nonce.data(), kNonceBytes);
  Digest their_proof;
  challenge.Bytes(their_proof.data(), their_proof.size());
  const Digest expected = Proof(me, "accept", me.rank, acceptor_rank, my_nonce, their_nonce);
  COS_CHECK(DigestsEqual(their_proof, expected), CommError, acceptor_name,
            " could not prove that it holds this job's secret (a wrong secret, or another "
            "job listening at that address)");

  const Digest mine = Proof(me, "connect", me.rank, acceptor_rank, my_nonce, their_nonce);
  PayloadWriter proof;
  proof.Bytes(mine.data(), mine.size());
  SendFrame(fd, FrameKind::kProof, proof.data(), acceptor_name, deadline);
  kind = ReadFrame(fd, &payload, acceptor_name, deadline);
  Expect(kind, FrameKind::kWelcome, payload, acceptor_name);
}

bool HandshakeAsAcceptor(int fd, const JobIdentity& me, int expected_rank,
                         const std::string& from, const Deadline& deadline, std::string* why) {
  const std::string who = "the connection from " + from;
  auto reject = [&](const std::string& reason) {
    PayloadWriter writer;
    writer.String(reason);
    try {
      SendFrame(fd, FrameKind::kReject, writer.data(), who, Deadline::After(0.05));
    } catch (const CommError&) {
      // The peer may already be gone; the rejection is a courtesy.
    }
    *why = who + ": " + reason;
    return false;
  };
  try {
    std::string payload;
    uint16_t kind = ReadFrame(fd, &payload, who, deadline);
    if (kind != static_cast<uint16_t>(FrameKind::kHello))
      return reject(Msg("expected a hello frame, got ", KindName(kind)));
    PayloadReader hello(payload, who + " hello");
    const uint32_t version = hello.U32();
    const std::string job_id = hello.String(kMaxJobId);
    const uint32_t world = hello.U32();
    const uint32_t rank = hello.U32();
    const uint32_t target = hello.U32();
    std::string their_nonce(kNonceBytes, '\0');
    hello.Bytes(their_nonce.data(), kNonceBytes);
    if (version != kHandshakeVersion)
      return reject(Msg("protocol version ", version, ", this rank speaks ", kHandshakeVersion));
    if (job_id != me.job_id) return reject(Msg("job '", job_id, "' is not this job"));
    if (world != static_cast<uint32_t>(me.world_size))
      return reject(Msg("world size ", world, " differs from ", me.world_size));
    if (rank != static_cast<uint32_t>(expected_rank) || target != static_cast<uint32_t>(me.rank))
      return reject(Msg("rank ", rank, " connecting to rank ", target, ", but rank ", me.rank,
                        " accepts rank ", expected_rank, " only"));

    const std::string my_nonce = RandomBytes(kNonceBytes);
    const Digest mine = Proof(me, "accept", expected_rank, me.rank, their_nonce, my_nonce);
    PayloadWriter challenge;
    challenge.Bytes(my_nonce.data(), my_nonce.size()).Bytes(mine.data(), mine.size());
    SendFrame(fd, FrameKind::kChallenge, challenge.data(), who, deadline);

    kind = ReadFrame(fd, &payload, who, deadline);
    if (kind != static_cast<uint16_t>(FrameKind::kProof))
      return reject(Msg("expected a proof frame, got ", KindName(kind)));
    PayloadReader proof(payload, who + " proof");
    Digest their_proof;
    proof.Bytes(their_proof.data(), their_proof.size());
    const Digest expected = Proof(me, "connect", expected_rank, me.rank, their_nonce, my_nonce);
    if (!DigestsEqual(their_proof, expected))
      return reject("the proof of the job secret is wrong");
    SendFrame(fd, FrameKind::kWelcome, std::string(), who, deadline);
    return true;
  } catch (const CommError& error) {
    *why = error.what();
    return false;
  }
}

}  // namespace caffeonspark::comm
