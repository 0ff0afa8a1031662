// Chooses and builds a rank's transport (UcxOptions::transport):
//   "tcp"   TcpTransport, as before;
//   "ucx"   UcxTransport (a ConfigError when this build or machine has no UCX, or with
//           encryption);
//   "auto"  UcxTransport when every rank can use UCX and has an RDMA transport (rc / ud /
//           dc in its UCX context), else TcpTransport. With encryption: TcpTransport.
// The authenticated TCP ring is built first (ring_connect.h). For "ucx" and "auto" the ranks
// then agree over it, in two laps round the ring started by rank 0 (TRANSPORT VOTE frames:
// u32 all_able, u32 first rank unable or world_size, string why), so all ranks pick the
// same transport even when their machines differ; rank 0 learns why UCX was not used.
// Tests: tests/comm/test_ucx_ring.py.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/handshake.h"
#include "comm/socket.h"
#include "comm/tcp_transport.h"
#include "comm/transport.h"
#include "comm/ucx_transport.h"

namespace caffeonspark::comm {

struct ConnectedTransport {
  std::unique_ptr<Transport> transport;
  std::string note;  // why "auto" chose TCP ("" otherwise)
};

ConnectedTransport ConnectTransport(Listener listener, JobIdentity me,
                                    std::vector<std::string> addresses, TcpOptions tcp,
                                    UcxOptions ucx);

// Setup frames on a socket of the authenticated ring (blocking up to `deadline`). Reading
// any other kind is a CommError naming `who` and saying that the transports differ.
void SendSetupFrame(int fd, FrameKind kind, const std::string& payload, const std::string& who,
                    const Deadline& deadline);
std::string ReadSetupFrame(int fd, FrameKind kind, const std::string& who,
                           const Deadline& deadline);

}  // namespace caffeonspark::comm
