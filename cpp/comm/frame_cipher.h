// AES-256-GCM for the frames of an encrypted ring link (TcpOptions::encrypt). Each direction
// of each connection has its own key (DeriveLinkKeys, handshake.h) and a frame counter as
// its 96-bit nonce, so a nonce is never reused under one key and a frame replayed, dropped
// or moved to another link or direction fails to verify. A sealed frame is the 16-byte
// header (additional authenticated data, in the clear: the receiver needs its length), the
// encrypted payload, then the 16-byte tag. libcrypto is loaded at run time (libcrypto.h).
// Tests: tests/comm/test_encrypted_ring.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "comm/sha256.h"

namespace caffeonspark::comm {

constexpr size_t kTagBytes = 16;

struct EvpCipherCtx;
struct LibCrypto;

// One direction's cipher state: the key and the next frame number.
class GcmDirection {
 public:
  explicit GcmDirection(const Digest& key);  // throws ConfigError when libcrypto is missing
  ~GcmDirection();
  GcmDirection(const GcmDirection&) = delete;
  GcmDirection& operator=(const GcmDirection&) = delete;

 protected:
  void NextNonce(uint8_t nonce[12]);
  const LibCrypto& c_;
  EvpCipherCtx* ctx_;
  Digest key_;
  uint64_t frames_ = 0;
};

// The sending side.
class FrameSealer : public GcmDirection {
 public:
  using GcmDirection::GcmDirection;
  // Encrypts `bytes` of `in` into `out` (room for bytes + kTagBytes: the tag goes last),
  // authenticating `header` too. `in` is never written.
  void Seal(const uint8_t* header, const uint8_t* in, size_t bytes, uint8_t* out);
};

// The receiving side: Begin with the frame's header, Decrypt its payload in place in pieces
// as they arrive, then Verify the tag. Nothing decrypted may be used before Verify is true.
class FrameOpener : public GcmDirection {
 public:
  using GcmDirection::GcmDirection;
  void Begin(const uint8_t* header);
  void Decrypt(uint8_t* data, size_t bytes);
  bool Verify(const uint8_t* tag);
};

}  // namespace caffeonspark::comm
