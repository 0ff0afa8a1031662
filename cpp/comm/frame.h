// The wire format shared by the handshake and the transport: every message is a frame of a
// 16-byte little-endian header then `length` payload bytes.
//
//   offset 0  u32 magic   "COSF" (0x46534f43): anything else is not one of ours
//   offset 4  u16 kind    FrameKind below
//   offset 6  u16 op      the collective a data frame belongs to (Op), else 0
//   offset 8  u32 seq     the collective's sequence number on this communicator, else 0
//   offset 12 u32 length  payload bytes; a frame longer than the receiver's limit is refused
//                         before any of its payload is read
//
// Handshake and abort payloads are built with PayloadWriter / PayloadReader (u32 fields and
// length-prefixed strings; a reader that runs past the end throws CommError).
// Tests: tests/comm/test_handshake.py (a Python peer speaks this format).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace caffeonspark::comm {

constexpr uint32_t kFrameMagic = 0x46534f43u;
constexpr size_t kFrameHeaderBytes = 16;

enum class FrameKind : uint16_t {
  kHello = 1,      // connector -> acceptor: who I am, a fresh nonce
  kChallenge = 2,  // acceptor -> connector: its nonce and its proof
  kProof = 3,      // connector -> acceptor: the connector's proof
  kWelcome = 4,    // acceptor -> connector: accepted
  kReject = 5,     // acceptor -> connector: refused, with the reason
  kData = 16,      // a segment of a collective
  kHeartbeat = 17, // empty: "this rank is alive"
  kAbort = 18,     // this rank gives up: flags, reporting rank and the error text
  kBye = 19,       // this rank closed its communicator normally
  kTransportVote = 20,  // setup: which transport the ring can run (connect_transport.h)
  kUcxAddress = 21,     // setup: a UCP worker address and receive token (ucx_transport.h)
};

enum class Op : uint16_t { kNone = 0, kAllreduce = 1, kBroadcast = 2, kBarrier = 3 };
const char* OpName(Op op);
const char* KindName(uint16_t kind);

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t kind = 0;
  uint16_t op = 0;
  uint32_t seq = 0;
  uint32_t length = 0;
};

void EncodeHeader(const FrameHeader& header, uint8_t* out);
FrameHeader DecodeHeader(const uint8_t* in);

class PayloadWriter {
 public:
  PayloadWriter& U32(uint32_t value);
  PayloadWriter& Bytes(const void* data, size_t bytes);   // raw, fixed size
  PayloadWriter& String(const std::string& text);         // u32 length + bytes
  const std::string& data() const { return data_; }

 private:
  std::string data_;
};

class PayloadReader {
 public:
  PayloadReader(const std::string& data, std::string what) : data_(data), what_(std::move(what)) {}
  uint32_t U32();
  void Bytes(void* out, size_t bytes);
  std::string String(size_t max_bytes);
  bool AtEnd() const { return at_ == data_.size(); }

 private:
  void Need(size_t bytes);
  const std::string& data_;
  std::string what_;
  size_t at_ = 0;
};

}  // namespace caffeonspark::comm
