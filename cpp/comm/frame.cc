#include "comm/frame.h"

#include <cstring>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

void PutU16(uint8_t* out, uint16_t value) {
  out[0] = uint8_t(value);
  out[1] = uint8_t(value >> 8);
}
void PutU32(uint8_t* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = uint8_t(value >> (8 * i));
}
uint16_t GetU16(const uint8_t* in) { return uint16_t(in[0] | (in[1] << 8)); }
uint32_t GetU32(const uint8_t* in) {
  return uint32_t(in[0]) | (uint32_t(in[1]) << 8) | (uint32_t(in[2]) << 16) |
         (uint32_t(in[3]) << 24);
}

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kAllreduce: return "allreduce";
    case Op::kBroadcast: return "broadcast";
    case Op::kBarrier: return "barrier";
    case Op::kNone: break;
  }
  return "none";
}

const char* KindName(uint16_t kind) {
  switch (static_cast<FrameKind>(kind)) {
    case FrameKind::kHello: return "hello";
    case FrameKind::kChallenge: return "challenge";
    case FrameKind::kProof: return "proof";
    case FrameKind::kWelcome: return "welcome";
    case FrameKind::kReject: return "reject";
    case FrameKind::kData: return "data";
    case FrameKind::kHeartbeat: return "heartbeat";
    case FrameKind::kAbort: return "abort";
    case FrameKind::kBye: return "bye";
    case FrameKind::kTransportVote: return "transport vote";
    case FrameKind::kUcxAddress: return "UCX address";
  }
  return "unknown";
}

void EncodeHeader(const FrameHeader& header, uint8_t* out) {
  PutU32(out, header.magic);
  PutU16(out + 4, header.kind);
  PutU16(out + 6, header.op);
  PutU32(out + 8, header.seq);
  PutU32(out + 12, header.length);
}

FrameHeader DecodeHeader(const uint8_t* in) {
  FrameHeader header;
  header.magic = GetU32(in);
  header.kind = GetU16(in + 4);
  header.op = GetU16(in + 6);
  header.seq = GetU32(in + 8);
  header.length = GetU32(in + 12);
  return header;
}

PayloadWriter& PayloadWriter::U32(uint32_t value) {
  uint8_t bytes[4];
  PutU32(bytes, value);
  data_.append(reinterpret_cast<const char*>(bytes), 4);
  return *this;
}

PayloadWriter& PayloadWriter::Bytes(const void* data, size_t bytes) {
  data_.append(static_cast<const char*>(data), bytes);
  return *this;
}

PayloadWriter& PayloadWriter::String(const std::string& text) {
  U32(static_cast<uint32_t>(text.size()));
  data_ += text;
  return *this;
}

void PayloadReader::Need(size_t bytes) {
  COS_CHECK(data_.size() - at_ >= bytes, CommError, what_, ": message truncated (",
            data_.size(), " bytes)");
}

uint32_t PayloadReader::U32() {
  Need(4);
  const uint32_t value = GetU32(reinterpret_cast<const uint8_t*>(data_.data() + at_));
  at_ += 4;
  return value;
}

void PayloadReader::Bytes(void* out, size_t bytes) {
  Need(bytes);
  std::memcpy(out, data_.data() + at_, bytes);
  at_ += bytes;
}

std::string PayloadReader::String(size_t max_bytes) {
  const uint32_t size = U32();
  COS_CHECK(size <= max_bytes, CommError, what_, ": a field of ", size,
            " bytes exceeds its limit of ", max_bytes);
  Need(size);
  std::string text = data_.substr(at_, size);
  at_ += size;
  return text;
}

}  // namespace caffeonspark::comm
