// The UCP / UCS functions the UCX transport calls, loaded at run time with dlopen from
// libucp.so.0 and libucs.so.0: the engine links no UCX, so the wheel imports and runs the
// TCP ring on a machine without UCX, and only asking for the UCX transport needs it. The
// types come from UCX's own headers (built only where `pkg-config ucx` finds them,
// COS_UCX in CMakeLists.txt); ucp_init is an inline wrapper in ucp.h, so its versioned
// ucp_init_version is what is resolved.
// Tests: tests/comm/test_ucx_ring.py.
#pragma once

#include <ucp/api/ucp.h>

namespace caffeonspark::comm {

struct LibUcp {
  decltype(&::ucp_config_read) config_read;
  decltype(&::ucp_config_modify) config_modify;
  decltype(&::ucp_config_release) config_release;
  decltype(&::ucp_init_version) init_version;
  decltype(&::ucp_cleanup) cleanup;
  decltype(&::ucp_context_print_info) context_print_info;
  decltype(&::ucp_worker_create) worker_create;
  decltype(&::ucp_worker_destroy) worker_destroy;
  decltype(&::ucp_worker_get_address) worker_get_address;
  decltype(&::ucp_worker_release_address) worker_release_address;
  decltype(&::ucp_worker_progress) worker_progress;
  decltype(&::ucp_worker_get_efd) worker_get_efd;
  decltype(&::ucp_worker_arm) worker_arm;
  decltype(&::ucp_ep_create) ep_create;
  decltype(&::ucp_ep_close_nbx) ep_close_nbx;
  decltype(&::ucp_worker_flush_nbx) worker_flush_nbx;
  decltype(&::ucp_ep_print_info) ep_print_info;
  decltype(&::ucp_tag_send_nbx) tag_send_nbx;
  decltype(&::ucp_tag_recv_nbx) tag_recv_nbx;
  decltype(&::ucp_request_check_status) request_check_status;
  decltype(&::ucp_request_cancel) request_cancel;
  decltype(&::ucp_request_free) request_free;
  decltype(&::ucp_mem_map) mem_map;
  decltype(&::ucp_mem_unmap) mem_unmap;
  decltype(&::ucs_status_string) status_string;  // libucs

  // ucp_init through the resolved ucp_init_version, with the headers' API version.
  ucs_status_t Init(const ucp_params_t* params, const ucp_config_t* config,
                    ucp_context_h* context) const {
    return init_version(UCP_API_MAJOR, UCP_API_MINOR, params, config, context);
  }

  // The process's one copy, loaded on first use and never unloaded. Throws ConfigError
  // naming libucp and how to install it.
  static const LibUcp& Get();
};

}  // namespace caffeonspark::comm
