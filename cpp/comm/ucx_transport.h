// UcxTransport: the ring's data over UCX's UCP tag API (InfiniBand / RoCE verbs where the
// fabric has them; shared memory and TCP otherwise), next to TcpTransport.
//
// Setup: the ring is first built and authenticated exactly as for TCP (ring_connect.h:
// every connection proves the job secret). Over those two authenticated sockets each rank
// sends its left neighbour (who sends it data) its UCP worker address and a fresh random
// 40-bit token, and creates one UCP endpoint to its right neighbour's worker.
//
// Data: PostSend is ucp_tag_send_nbx on that endpoint with the tag
//   bits 63..24  the receiver's token     (matched exactly: the tag mask)
//   bits 23..20  the collective (Op)      (matched by the transport, not by UCX:
//   bits 19..0   its sequence number mod 2^20      a mismatch is a clear CommError)
// PostRecv is ucp_tag_recv_nbx with that mask: only a peer given the token over the
// authenticated channel can match a receive, so no unauthenticated peer gets a byte into a
// tensor. Each completed receive's (op, sequence) and length are checked against the
// posted one ("... is in barrier #7 while this rank is in allreduce #7", "... the buffers
// differ in size across ranks"). Tag matching keeps each sender's order, so receives from
// one peer complete the sends in the order posted.
//
// Control: the two TCP sockets stay open for the control frames of TcpTransport
// (heartbeats, abort notices relayed round the ring, goodbye), so the failure contract is
// the same: a peer that goes silent for timeout_seconds while this rank waits on it is a
// PeerTimeout naming it; a socket closed without goodbye (a killed process) is a CommError
// "... without saying goodbye ... died or was killed?"; an error UCX reports on a request or
// endpoint is a CommError naming the peer. UCX endpoints use UCP_ERR_HANDLING_MODE_NONE
// (shared memory has no peer-failure support in UCX 1.13), the control sockets detect
// failures for every UCX transport.
//
// Progress: UCX moves data only while a worker is progressed, on both sides. So setup ends
// with one empty message each way (the connection's wire-up settles while every rank is
// still there), and every collective ends (WaitAll) with ucp_worker_flush_nbx: no byte of
// it, and no protocol reply a peer still waits for, stays in this worker's queues while
// this rank goes on to other work (another communicator, say).
//
// Progress thread: what still arrives while this rank does other work (a peer's wire-up
// or data for a collective this rank has not begun, a rendezvous reply) is progressed by
// one thread per transport, started at the end of setup, so a process may alternate
// collectives between this communicator and others. One recursive mutex serializes every
// UCP call on the worker (UCS_THREAD_MODE_SERIALIZED) and every request slot: the caller
// holds it for each whole public call and announces that it wants it, so the thread gives
// way; the thread takes it between calls (not within max_sleep_seconds of the caller's
// last call: between the calls of one collective the caller progresses it itself), runs a
// bounded burst of ucp_worker_progress (the callbacks only mark slots done; the caller
// reaps and checks them, so every error is the caller's), arms the worker and sleeps in
// poll() on its event fd and a stop eventfd (at most max_sleep_seconds while traffic is
// recent, 0.1 s when quiet, since some UCX transports miss wake-ups). Close stops and
// joins it first; the destructor makes sure.
//
// Waiting: ucp_worker_progress until idle, then ucp_worker_arm and one poll() over the
// worker's event fd, the control sockets and the abort eventfd - no spinning. Some UCX
// transports (TCP rendezvous) can miss a wake-up, so while a request is outstanding a
// sleep lasts at most max_sleep_seconds.
//
// Memory: RegisterBuffer maps a stable buffer once (ucp_mem_map, at most max_registrations
// of them); sends and receives inside it pass that handle (UCP_OP_ATTR_FIELD_MEMH).
// Other buffers are left to UCX's own registration cache.
//
// Encryption is not offered on UCX: asking for both is a ConfigError. When this build has
// no UCX headers, or libucp.so.0 is missing at run time, asking for UCX is a ConfigError
// naming libucp and how to install it.
// Tests: tests/comm/test_ucx_ring.py.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "comm/handshake.h"
#include "comm/ring_connect.h"
#include "comm/tcp_transport.h"
#include "comm/transport.h"

namespace caffeonspark::comm {

struct UcxOptions {
  // "tcp": the TCP ring; "ucx": UCX (an error when unavailable); "auto": UCX when every
  // rank has it and an RDMA transport (rc / ud / dc), else TCP.
  std::string transport = "tcp";
  std::string tls;                  // UCX_TLS of this communicator's context ("": UCX's own)
  double max_sleep_seconds = 0.001; // longest sleep while a UCX request is outstanding
  int max_registrations = 64;       // RegisterBuffer mappings kept
};

// One UCP context and worker (defined in ucx_transport.cc).
class UcxSession;

// Whether this build has the UCX transport (UCX headers found at build time).
bool UcxBuilt();
// Loads libucp and opens a context + worker with `options.tls`. Throws ConfigError when the
// build has no UCX or the library is missing, CommError when UCX fails.
std::shared_ptr<UcxSession> OpenUcxSession(const UcxOptions& options);
// The session's UCX resources ("tcp/lo, posix/memory, ...") and whether one is RDMA.
std::string UcxResources(const UcxSession& session);
bool UcxHasRdma(const UcxSession& session);

// The UCX transport over a ring built by ConnectRing (see the header comment).
std::unique_ptr<Transport> MakeUcxTransport(std::shared_ptr<UcxSession> session,
                                            RingSockets ring, JobIdentity me,
                                            std::vector<std::string> addresses, TcpOptions tcp,
                                            UcxOptions ucx);

}  // namespace caffeonspark::comm
