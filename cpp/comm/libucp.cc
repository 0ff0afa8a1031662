#include "comm/libucp.h"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "core/errors.h"

namespace caffeonspark::comm {

namespace {

constexpr const char* kHowToGet =
    "; the UCX transport (CommOptions.transport='ucx', -connection infiniband) needs UCX's "
    "libucp.so.0: install it (Debian/Ubuntu: apt-get install libucx0; RHEL/Fedora/conda: "
    "ucx) or use the TCP ring (transport='tcp', -connection ethernet)";

template <typename Fn>
void Resolve(void* library, const char* file, const char* name, Fn* out) {
  void* symbol = dlsym(library, name);
  COS_CHECK(symbol != nullptr, ConfigError, file, " has no ", name, " (", dlerror(), ")",
            kHowToGet);
  *out = reinterpret_cast<Fn>(symbol);
}

void* Open(const char* versioned, const char* plain) {
  void* library = dlopen(versioned, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) library = dlopen(plain, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* why = dlerror();
    throw ConfigError(Msg("cannot load ", versioned, " (", why ? why : "not found", ")",
                          kHowToGet));
  }
  return library;
}

LibUcp Load() {
  void* ucs = Open("libucs.so.0", "libucs.so");
  void* ucp = Open("libucp.so.0", "libucp.so");
  LibUcp lib{};
  const char* p = "libucp.so.0";
  Resolve(ucp, p, "ucp_config_read", &lib.config_read);
  Resolve(ucp, p, "ucp_config_modify", &lib.config_modify);
  Resolve(ucp, p, "ucp_config_release", &lib.config_release);
  Resolve(ucp, p, "ucp_init_version", &lib.init_version);
  Resolve(ucp, p, "ucp_cleanup", &lib.cleanup);
  Resolve(ucp, p, "ucp_context_print_info", &lib.context_print_info);
  Resolve(ucp, p, "ucp_worker_create", &lib.worker_create);
  Resolve(ucp, p, "ucp_worker_destroy", &lib.worker_destroy);
  Resolve(ucp, p, "ucp_worker_get_address", &lib.worker_get_address);
  Resolve(ucp, p, "ucp_worker_release_address", &lib.worker_release_address);
  Resolve(ucp, p, "ucp_worker_progress", &lib.worker_progress);
  Resolve(ucp, p, "ucp_worker_get_efd", &lib.worker_get_efd);
  Resolve(ucp, p, "ucp_worker_arm", &lib.worker_arm);
  Resolve(ucp, p, "ucp_ep_create", &lib.ep_create);
  Resolve(ucp, p, "ucp_ep_close_nbx", &lib.ep_close_nbx);
  Resolve(ucp, p, "ucp_worker_flush_nbx", &lib.worker_flush_nbx);
  Resolve(ucp, p, "ucp_ep_print_info", &lib.ep_print_info);
  Resolve(ucp, p, "ucp_tag_send_nbx", &lib.tag_send_nbx);
  Resolve(ucp, p, "ucp_tag_recv_nbx", &lib.tag_recv_nbx);
  Resolve(ucp, p, "ucp_request_check_status", &lib.request_check_status);
  Resolve(ucp, p, "ucp_request_cancel", &lib.request_cancel);
  Resolve(ucp, p, "ucp_request_free", &lib.request_free);
  Resolve(ucp, p, "ucp_mem_map", &lib.mem_map);
  Resolve(ucp, p, "ucp_mem_unmap", &lib.mem_unmap);
  Resolve(ucs, "libucs.so.0", "ucs_status_string", &lib.status_string);
  return lib;  // the handles stay open for the life of the process
}

}  // namespace

const LibUcp& LibUcp::Get() {
  // Not a function-local static: a failed load is retried (and reported) on the next call.
  static std::mutex mutex;
  static LibUcp loaded{};
  static bool ready = false;
  std::lock_guard<std::mutex> lock(mutex);
  if (!ready) {
    loaded = Load();
    ready = true;
  }
  return loaded;
}

}  // namespace caffeonspark::comm
