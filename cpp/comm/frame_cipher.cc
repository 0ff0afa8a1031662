#include "comm/frame_cipher.h"

#include <algorithm>
#include <climits>

#include "comm/frame.h"
#include "comm/libcrypto.h"
#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kMaxPiece = size_t{1} << 30;  // EVP lengths are ints

void Check(int ok, const char* what) {
  COS_CHECK(ok == 1, CommError, "AES-256-GCM: ", what, " failed in libcrypto");
}

const unsigned char* U(const uint8_t* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U(uint8_t* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

GcmDirection::GcmDirection(const Digest& key)
    : c_(LibCrypto::Get()), ctx_(c_.CipherCtxNew()), key_(key) {
  COS_CHECK(ctx_ != nullptr, CommError, "AES-256-GCM: EVP_CIPHER_CTX_new failed");
}

GcmDirection::~GcmDirection() { c_.CipherCtxFree(ctx_); }

void GcmDirection::NextNonce(uint8_t nonce[kNonceBytes]) {
  // 4 zero bytes, then the frame number (little-endian): unique per key until 2^64 frames.
  COS_CHECK(frames_ != UINT64_MAX, CommError, "AES-256-GCM: frame counter exhausted");
  const uint64_t n = frames_++;
  for (size_t i = 0; i < 4; ++i) nonce[i] = 0;
  for (size_t i = 0; i < 8; ++i) nonce[4 + i] = uint8_t(n >> (8 * i));
}

void FrameSealer::Seal(const uint8_t* header, const uint8_t* in, size_t bytes, uint8_t* out) {
  const LibCrypto& c = c_;
  uint8_t nonce[kNonceBytes];
  NextNonce(nonce);
  int len = 0;
  // Key and IV length are set on every frame: cheap next to the payload, and no state
  // from an earlier failed frame can leak into this one.
  Check(c.EncryptInit(ctx_, c.Aes256Gcm(), nullptr, nullptr, nullptr), "EVP_EncryptInit_ex");
  Check(c.CipherCtxCtrl(ctx_, kEvpCtrlGcmSetIvLen, int(kNonceBytes), nullptr), "set IV length");
  Check(c.EncryptInit(ctx_, nullptr, nullptr, U(key_.data()), U(nonce)), "EVP_EncryptInit_ex");
  Check(c.EncryptUpdate(ctx_, nullptr, &len, U(header), int(kFrameHeaderBytes)),
        "EVP_EncryptUpdate (header)");
  for (size_t done = 0; done < bytes;) {
    const size_t piece = std::min(bytes - done, kMaxPiece);
    Check(c.EncryptUpdate(ctx_, U(out + done), &len, U(in + done), int(piece)),
          "EVP_EncryptUpdate");
    done += piece;
  }
  Check(c.EncryptFinal(ctx_, U(out + bytes), &len), "EVP_EncryptFinal_ex");
  Check(c.CipherCtxCtrl(ctx_, kEvpCtrlGcmGetTag, int(kTagBytes), out + bytes), "get tag");
}

void FrameOpener::Begin(const uint8_t* header) {
  const LibCrypto& c = c_;
  uint8_t nonce[kNonceBytes];
  NextNonce(nonce);
  int len = 0;
  Check(c.DecryptInit(ctx_, c.Aes256Gcm(), nullptr, nullptr, nullptr), "EVP_DecryptInit_ex");
  Check(c.CipherCtxCtrl(ctx_, kEvpCtrlGcmSetIvLen, int(kNonceBytes), nullptr), "set IV length");
  Check(c.DecryptInit(ctx_, nullptr, nullptr, U(key_.data()), U(nonce)), "EVP_DecryptInit_ex");
  Check(c.DecryptUpdate(ctx_, nullptr, &len, U(header), int(kFrameHeaderBytes)),
        "EVP_DecryptUpdate (header)");
}

void FrameOpener::Decrypt(uint8_t* data, size_t bytes) {
  const LibCrypto& c = c_;
  int len = 0;
  for (size_t done = 0; done < bytes;) {
    const size_t piece = std::min(bytes - done, kMaxPiece);
    Check(c.DecryptUpdate(ctx_, U(data + done), &len, U(data + done), int(piece)),
          "EVP_DecryptUpdate");
    done += piece;
  }
}

bool FrameOpener::Verify(const uint8_t* tag) {
  const LibCrypto& c = c_;
  uint8_t copy[kTagBytes];
  std::copy(tag, tag + kTagBytes, copy);  // SET_TAG takes a non-const pointer
  Check(c.CipherCtxCtrl(ctx_, kEvpCtrlGcmSetTag, int(kTagBytes), copy), "set tag");
  int len = 0;
  uint8_t sink[16];
  return c.DecryptFinal(ctx_, U(sink), &len) == 1;
}

}  // namespace caffeonspark::comm
