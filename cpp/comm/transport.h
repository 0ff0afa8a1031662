// Transport: what the collective algorithms see of the network (they never see sockets).
// Ranks 0..world_size-1; posted sends and receives of byte ranges to / from a peer, each
// completed in the order posted per peer and direction; Wait drives progress (blocking
// without spinning) until one request is done. Between collectives Idle keeps the links
// alive (heartbeats) and notices failed peers early.
//
// Failure contract: every error is a CommError or PeerTimeout naming the peer's rank and
// address. The first failure also tells the other ranks (best effort) and closes the
// transport; every later call throws that same error again.
// Implementations: TcpTransport (cpp/comm/tcp_transport.h), UcxTransport
// (cpp/comm/ucx_transport.h); connect_transport.h chooses between them. Tests: tests/comm/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "comm/frame.h"

namespace caffeonspark::comm {

class Transport {
 public:
  using Request = uint64_t;
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  int left() const { return (rank() + world_size() - 1) % world_size(); }
  int right() const { return (rank() + 1) % world_size(); }
  // "rank 3 (10.0.0.7:41000)".
  virtual std::string PeerName(int rank) const = 0;
  // What carries the data: "tcp", "ucx (rc_mlx5/mlx5_0:1)", ...
  virtual std::string Describe() const = 0;

  // Starts the next collective: its frames carry (op, sequence number), so ranks that call
  // different collectives, or buffers of different sizes, fail with a clear error.
  virtual void BeginCollective(Op op) = 0;
  // The buffers must stay valid, and a send's bytes unchanged, until the request is done.
  virtual Request PostSend(int peer, const void* data, size_t bytes) = 0;
  virtual Request PostRecv(int peer, void* data, size_t bytes) = 0;
  virtual void Wait(Request request) = 0;
  // Waits for every posted request.
  virtual void WaitAll() = 0;
  // The largest byte range one PostSend / PostRecv may carry.
  virtual size_t max_message_bytes() const = 0;

  // Progress without posted requests for up to `seconds`: heartbeats, failure notices.
  // Never throws: a failure seen here is stored and thrown by the next call.
  virtual void Idle(double seconds) = 0;
  // Seconds between heartbeats (callers of Idle should return at least this often).
  virtual double heartbeat_seconds() const = 0;
  // This rank gives up: peers receive `reason` (naming this rank) and fail in turn.
  virtual void Abort(const std::string& reason) = 0;
  // Thread-safe Abort: may be called while another thread waits in a collective; that
  // wait ends at once with this rank's abort (or the next call does, when none waits).
  virtual void RequestAbort(const std::string& reason) = 0;
  // Normal end: peers learn that this rank left on purpose.
  virtual void Close() = 0;
  virtual bool failed() const = 0;

  // A buffer that stays allocated, at the same address, until UnregisterBuffer (gradient
  // buckets, scratch space): a transport that registers memory with the network card does
  // it once here instead of on every send. Sends and receives inside it may use that
  // registration. Best effort: the default (and a transport out of registrations) ignores it.
  virtual void RegisterBuffer(const void* data, size_t bytes) {}
  virtual void UnregisterBuffer(const void* data) {}
};

}  // namespace caffeonspark::comm
