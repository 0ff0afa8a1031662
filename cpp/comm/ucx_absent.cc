// The UCX entry points of a build without UCX's headers (COS_UCX=off, or auto where
// `pkg-config ucx` found none): asking for the UCX transport is a ConfigError saying so.
// Tests: tests/comm/test_ucx_ring.py.
#include "comm/ucx_transport.h"
#include "core/errors.h"

namespace caffeonspark::comm {

class UcxSession {};

bool UcxBuilt() { return false; }

std::shared_ptr<UcxSession> OpenUcxSession(const UcxOptions& options) {
  throw ConfigError(
      "this caffeonspark was built without the UCX transport (no UCX headers found): install "
      "UCX's development files (Debian/Ubuntu: apt-get install libucx-dev; conda: ucx) and "
      "rebuild with -DCOS_UCX=on, or use the TCP ring (transport='tcp', -connection ethernet)");
}

std::string UcxResources(const UcxSession& session) { return "none"; }
bool UcxHasRdma(const UcxSession& session) { return false; }

std::unique_ptr<Transport> MakeUcxTransport(std::shared_ptr<UcxSession> session,
                                            RingSockets ring, JobIdentity me,
                                            std::vector<std::string> addresses, TcpOptions tcp,
                                            UcxOptions ucx) {
  OpenUcxSession(ucx);
  return nullptr;
}

}  // namespace caffeonspark::comm
