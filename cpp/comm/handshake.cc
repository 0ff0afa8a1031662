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
constexpr uint32_t kHelloEncrypt = 1;  // HELLO flags bit: this rank seals its frames

void SendFrame(int fd, FrameKind kind, const std::string& payload, const std::string& who,
               const Deadline& deadline) {
  const std::string frame = EncodeFrame(kind, payload);
  SendAll(fd, frame.data(), frame.size(), who, deadline);
}

// Reads the rest of a frame whose header is in `bytes`; returns its kind.
uint16_t ReadPayload(int fd, const uint8_t* bytes, std::string* payload, const std::string& who,
                     const Deadline& deadline) {
  const FrameHeader header = DecodeHeader(bytes);
  const std::string problem = HandshakeFrameProblem(header);
  COS_CHECK(problem.empty(), CommError, who, problem);
  payload->assign(header.length, '\0');
  if (header.length > 0) RecvAll(fd, payload->data(), header.length, who, deadline);
  return header.kind;
}

// Reads one handshake frame; its kind is returned, its payload stored in `payload`.
uint16_t ReadFrame(int fd, std::string* payload, const std::string& who,
                   const Deadline& deadline) {
  uint8_t bytes[kFrameHeaderBytes];
  RecvAll(fd, bytes, sizeof(bytes), who, deadline);
  return ReadPayload(fd, bytes, payload, who, deadline);
}

void Expect(uint16_t kind, FrameKind wanted, const std::string& payload, const std::string& who) {
  if (kind == static_cast<uint16_t>(FrameKind::kReject)) {
    PayloadReader reader(payload, who);
    throw CommError(
        Msg(who, " rejected the handshake: ", Printable(reader.String(kHandshakeMaxFrame), 512)));
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

std::string EncryptionWord(bool encrypt) { return encrypt ? "an encrypted" : "a plain"; }

}  // namespace

LinkKeys DeriveLinkKeys(const JobIdentity& me, int connector, int acceptor,
                        const std::string& connector_nonce, const std::string& acceptor_nonce) {
  LinkKeys keys;
  keys.to_acceptor = Proof(me, "aes-256-gcm key, connector to acceptor", connector, acceptor,
                           connector_nonce, acceptor_nonce);
  keys.to_connector = Proof(me, "aes-256-gcm key, acceptor to connector", connector, acceptor,
                            connector_nonce, acceptor_nonce);
  return keys;
}

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

std::string EncodeFrame(FrameKind kind, const std::string& payload) {
  FrameHeader header;
  header.kind = static_cast<uint16_t>(kind);
  header.length = static_cast<uint32_t>(payload.size());
  uint8_t bytes[kFrameHeaderBytes];
  EncodeHeader(header, bytes);
  return std::string(reinterpret_cast<const char*>(bytes), kFrameHeaderBytes) + payload;
}

std::string HandshakeFrameProblem(const FrameHeader& header) {
  if (header.magic != kFrameMagic)
    return " does not speak the caffeonspark protocol (bad frame magic)";
  if (header.length > kHandshakeMaxFrame)
    return Msg(" sent a handshake frame of ", header.length, " bytes (limit ",
               kHandshakeMaxFrame, ")");
  return std::string();
}

std::string Printable(const std::string& text, size_t max_chars) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    if (out.size() >= max_chars) return out + "...";
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    }
  }
  return out;
}

bool HandshakeAsConnector(int fd, const JobIdentity& me, int acceptor_rank,
                          const std::string& acceptor_name, const Deadline& deadline,
                          LinkKeys* keys) {
  const std::string my_nonce = RandomBytes(kNonceBytes);
  PayloadWriter hello;
  hello.U32(kHandshakeVersion).String(me.job_id).U32(static_cast<uint32_t>(me.world_size));
  hello.U32(static_cast<uint32_t>(me.rank)).U32(static_cast<uint32_t>(acceptor_rank));
  hello.Bytes(my_nonce.data(), my_nonce.size());
  // Only an encrypted ring appends the flags: a plain HELLO stays byte for byte as it was.
  if (me.encrypt) hello.U32(kHelloEncrypt);
  const std::string frame = EncodeFrame(FrameKind::kHello, hello.data());
  if (!SendAllUnlessClosed(fd, frame.data(), frame.size(), acceptor_name, deadline))
    return false;

  // Until the CHALLENGE's first byte, a hang-up is the acceptor dropping an unproven
  // connection (retryable); after it, a broken handshake.
  uint8_t bytes[kFrameHeaderBytes];
  if (!RecvAllUnlessClosed(fd, bytes, sizeof(bytes), acceptor_name, deadline)) return false;
  std::string payload;
  uint16_t kind = ReadPayload(fd, bytes, &payload, acceptor_name, deadline);
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
  if (me.encrypt) *keys = DeriveLinkKeys(me, me.rank, acceptor_rank, my_nonce, their_nonce);
  return true;
}

AcceptorHandshake::AcceptorHandshake(const JobIdentity& me, int expected_rank, std::string who)
    : me_(&me), expected_rank_(expected_rank), who_(std::move(who)) {}

AcceptorHandshake::Step AcceptorHandshake::OnFrame(uint16_t kind, const std::string& payload,
                                                   std::string* reply, std::string* why) {
  try {
    if (!hello_done()) {
      if (kind != static_cast<uint16_t>(FrameKind::kHello))
        return Reject(Msg("expected a hello frame, got ", KindName(kind)), reply, why);
      return OnHello(payload, reply, why);
    }
    if (kind != static_cast<uint16_t>(FrameKind::kProof))
      return Reject(Msg("expected a proof frame, got ", KindName(kind)), reply, why);
    return OnProof(payload, reply, why);
  } catch (const CommError& error) {  // a payload too short for its fields
    *why = error.what();
    return Step::kRejected;
  }
}

AcceptorHandshake::Step AcceptorHandshake::OnHello(const std::string& payload,
                                                   std::string* reply, std::string* why) {
  const JobIdentity& me = *me_;
  PayloadReader hello(payload, who_ + " hello");
  const uint32_t version = hello.U32();
  const std::string job_id = hello.String(kMaxJobId);
  const uint32_t world = hello.U32();
  const uint32_t rank = hello.U32();
  const uint32_t target = hello.U32();
  std::string their_nonce(kNonceBytes, '\0');
  hello.Bytes(their_nonce.data(), kNonceBytes);
  const bool encrypt = !hello.AtEnd() && (hello.U32() & kHelloEncrypt) != 0;
  if (version != kHandshakeVersion)
    return Reject(Msg("protocol version ", version, ", this rank speaks ", kHandshakeVersion),
                  reply, why);
  if (job_id != me.job_id)
    return Reject(Msg("job '", Printable(job_id), "' is not this job"), reply, why);
  if (world != static_cast<uint32_t>(me.world_size))
    return Reject(Msg("world size ", world, " differs from ", me.world_size), reply, why);
  if (rank != static_cast<uint32_t>(expected_rank_) || target != static_cast<uint32_t>(me.rank))
    return Reject(Msg("rank ", rank, " connecting to rank ", target, ", but rank ", me.rank,
                      " accepts rank ", expected_rank_, " only"),
                  reply, why);
  if (encrypt != me.encrypt)
    return Reject(Msg("rank ", rank, " asks for ", EncryptionWord(encrypt), " ring, but rank ",
                      me.rank, " runs ", EncryptionWord(me.encrypt),
                      " one: set encryption alike on every rank (CommOptions.encrypt, "
                      "-encrypt_ring, -ringEncryption)"),
                  reply, why);

  their_nonce_ = their_nonce;
  my_nonce_ = RandomBytes(kNonceBytes);
  const Digest mine = Proof(me, "accept", expected_rank_, me.rank, their_nonce_, my_nonce_);
  PayloadWriter challenge;
  challenge.Bytes(my_nonce_.data(), my_nonce_.size()).Bytes(mine.data(), mine.size());
  *reply = EncodeFrame(FrameKind::kChallenge, challenge.data());
  return Step::kContinue;
}

AcceptorHandshake::Step AcceptorHandshake::OnProof(const std::string& payload,
                                                   std::string* reply, std::string* why) {
  PayloadReader proof(payload, who_ + " proof");
  Digest their_proof;
  proof.Bytes(their_proof.data(), their_proof.size());
  const Digest expected =
      Proof(*me_, "connect", expected_rank_, me_->rank, their_nonce_, my_nonce_);
  if (!DigestsEqual(their_proof, expected))
    return Reject("the proof of the job secret is wrong", reply, why);
  if (me_->encrypt)
    keys_ = DeriveLinkKeys(*me_, expected_rank_, me_->rank, their_nonce_, my_nonce_);
  *reply = EncodeFrame(FrameKind::kWelcome, std::string());
  return Step::kAccepted;
}

AcceptorHandshake::Step AcceptorHandshake::Reject(const std::string& reason, std::string* reply,
                                                  std::string* why) const {
  PayloadWriter writer;
  writer.String(reason);
  *reply = EncodeFrame(FrameKind::kReject, writer.data());
  *why = who_ + ": " + reason;
  return Step::kRejected;
}

}  // namespace caffeonspark::comm
