// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written from the standards so the
// handshake needs no system crypto library. Used only to prove that both ends of a
// connection hold the job's secret (cpp/comm/handshake.cc); not a general crypto API.
// Tests: tests/comm/test_sha256.py (against Python's hashlib and hmac).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace caffeonspark::comm {

using Digest = std::array<uint8_t, 32>;

// Streaming SHA-256: Update any number of times, then Final once.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t bytes);
  Digest Final();

 private:
  void Compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> block_{};
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;
};

Digest Sha256Of(const void* data, size_t bytes);

// HMAC-SHA256(key, message) = H((K' ^ opad) || H((K' ^ ipad) || message)), where K' is the
// key (hashed first when longer than the 64-byte block) padded with zeros to 64 bytes.
Digest HmacSha256(const std::string& key, const void* message, size_t bytes);

// Compares two digests in time independent of where they differ.
bool DigestsEqual(const Digest& a, const Digest& b);

std::string ToHex(const Digest& digest);

}  // namespace caffeonspark::comm
