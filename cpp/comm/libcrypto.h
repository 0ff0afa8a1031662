// The few OpenSSL libcrypto functions the encrypted ring needs (AES-256-GCM through EVP),
// loaded at run time with dlopen: the wheel links no OpenSSL, so it imports and runs the
// plain ring on a machine without it, and only asking for encryption needs the library.
// The signatures are declared here from OpenSSL's documented EVP API (EVP_EncryptInit(3)).
// Tests: tests/comm/test_encrypted_ring.py.
#pragma once

namespace caffeonspark::comm {

// OpenSSL's opaque types, only ever handled by pointer.
struct EvpCipherCtx;
struct EvpCipher;

// EVP_CIPHER_CTX_ctrl commands for GCM (openssl/evp.h).
constexpr int kEvpCtrlGcmSetIvLen = 0x9;
constexpr int kEvpCtrlGcmGetTag = 0x10;
constexpr int kEvpCtrlGcmSetTag = 0x11;

struct LibCrypto {
  EvpCipherCtx* (*CipherCtxNew)();
  void (*CipherCtxFree)(EvpCipherCtx*);
  const EvpCipher* (*Aes256Gcm)();
  int (*EncryptInit)(EvpCipherCtx*, const EvpCipher*, void* engine, const unsigned char* key,
                     const unsigned char* iv);
  int (*EncryptUpdate)(EvpCipherCtx*, unsigned char* out, int* out_len,
                       const unsigned char* in, int in_len);
  int (*EncryptFinal)(EvpCipherCtx*, unsigned char* out, int* out_len);
  int (*DecryptInit)(EvpCipherCtx*, const EvpCipher*, void* engine, const unsigned char* key,
                     const unsigned char* iv);
  int (*DecryptUpdate)(EvpCipherCtx*, unsigned char* out, int* out_len,
                       const unsigned char* in, int in_len);
  int (*DecryptFinal)(EvpCipherCtx*, unsigned char* out, int* out_len);
  int (*CipherCtxCtrl)(EvpCipherCtx*, int command, int arg, void* ptr);

  // The process's one copy, loaded on first use (libcrypto.so.3, then libcrypto.so) and
  // never unloaded. Throws ConfigError naming the library and how to install it.
  static const LibCrypto& Get();
};

}  // namespace caffeonspark::comm
