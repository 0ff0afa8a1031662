#include "comm/libcrypto.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr const char* kHowToGet =
    "; encryption on the ring (CommOptions.encrypt, -encrypt_ring, -ringEncryption) needs "
    "OpenSSL 3's libcrypto.so.3: install it (Debian/Ubuntu: apt-get install libssl3; "
    "RHEL/Fedora: openssl-libs) or run without encryption";

template <typename Fn>
void Resolve(void* library, const char* name, Fn* out) {
  void* symbol = dlsym(library, name);
  COS_CHECK(symbol != nullptr, ConfigError, "libcrypto has no ", name, " (", dlerror(), ")",
            kHowToGet);
  *out = reinterpret_cast<Fn>(symbol);
}

LibCrypto Load() {
  // The versioned name first: an unversioned libcrypto.so (a dev symlink) may be OpenSSL 1.1.
  void* library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) library = dlopen("libcrypto.so", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    throw ConfigError(Msg("cannot load libcrypto.so.3 (", why ? why : "not found", ")",
                          kHowToGet));
  }
  LibCrypto crypto{};
  Resolve(library, "EVP_CIPHER_CTX_new", &crypto.CipherCtxNew);
  Resolve(library, "EVP_CIPHER_CTX_free", &crypto.CipherCtxFree);
  Resolve(library, "EVP_aes_256_gcm", &crypto.Aes256Gcm);
  Resolve(library, "EVP_EncryptInit_ex", &crypto.EncryptInit);
  Resolve(library, "EVP_EncryptUpdate", &crypto.EncryptUpdate);
  Resolve(library, "EVP_EncryptFinal_ex", &crypto.EncryptFinal);
  Resolve(library, "EVP_DecryptInit_ex", &crypto.DecryptInit);
  Resolve(library, "EVP_DecryptUpdate", &crypto.DecryptUpdate);
  Resolve(library, "EVP_DecryptFinal_ex", &crypto.DecryptFinal);
  Resolve(library, "EVP_CIPHER_CTX_ctrl", &crypto.CipherCtxCtrl);
  return crypto;  // the handle stays open for the life of the process
}

}  // namespace

const LibCrypto& LibCrypto::Get() {
  // Not a function-local static: a failed load is retried (and reported) on the next call.
  static std::mutex mutex;
  static LibCrypto loaded{};
  static bool ready = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (!ready) {
    loaded = Load();
    ready = true;
  }
  return loaded;
}

}  // namespace caffeonspark::comm
