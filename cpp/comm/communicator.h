// Communicator: one rank's membership of a job, the facade Python and the solver use. It
// owns a Transport (TCP or UCX, chosen by connect_transport.h) and runs the ring collectives over it (RingAllreduce, RingBroadcast,
// RingBarrier). Calls are serialised by a mutex (a Transport serves one caller at a time);
// Abort may come from any thread and ends a collective another thread is waiting in.
// Every rank must call the same collectives in the same order with the same sizes.
// Tests: tests/comm/test_allreduce.py, tests/comm/test_faults.py.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/collective.h"
#include "comm/connect_transport.h"
#include "comm/ring_allreduce.h"
#include "comm/ring_barrier.h"
#include "comm/ring_broadcast.h"
#include "comm/tcp_transport.h"
#include "comm/transport.h"

namespace caffeonspark::comm {

class Communicator {
 public:
  Communicator(std::unique_ptr<Transport> transport, CollectiveOptions options,
               std::string transport_note = "");
  // Builds the ring on the transport `ucx.transport` selects (blocking up to
  // tcp.timeout_seconds); see connect_transport.h.
  static std::shared_ptr<Communicator> Connect(Listener listener, JobIdentity me,
                                               std::vector<std::string> addresses,
                                               TcpOptions tcp, UcxOptions ucx,
                                               CollectiveOptions options);
  // Builds the TCP ring (blocking up to tcp.timeout_seconds).
  static std::shared_ptr<Communicator> ConnectTcp(Listener listener, JobIdentity me,
                                                  std::vector<std::string> addresses,
                                                  TcpOptions tcp, CollectiveOptions options);
  ~Communicator();

  int rank() const { return transport_->rank(); }
  int world_size() const { return transport_->world_size(); }
  std::string PeerName(int rank) const { return transport_->PeerName(rank); }
  double heartbeat_seconds() const { return transport_->heartbeat_seconds(); }
  // What carries the data ("tcp", "ucx (rc_mlx5/mlx5_0:1)"), and why "auto" chose TCP.
  std::string transport() const { return transport_->Describe(); }
  const std::string& transport_note() const { return transport_note_; }
  // See Transport::RegisterBuffer: a buffer that stays put until UnregisterBuffer.
  void RegisterBuffer(const void* data, size_t bytes);
  void UnregisterBuffer(const void* data);
  bool failed() const;

  // In place: data = sum over ranks (average: the sum times 1/P).
  void Allreduce(float* data, size_t count, bool average);
  void Broadcast(void* data, size_t bytes, int root);
  void Barrier();
  // Heartbeats and failure notices between collectives (see Transport::Idle); skipped when
  // another thread holds the communicator.
  void Idle(double seconds);
  // Thread-safe: this rank gives up, peers fail naming it.
  void Abort(const std::string& reason);
  // Normal end (peers learn this rank left on purpose). Idempotent.
  void Close();

 private:
  std::unique_ptr<Transport> transport_;
  std::string transport_note_;
  std::mutex mutex_;
  RingAllreduce allreduce_;
  RingBroadcast broadcast_;
  RingBarrier barrier_;
};

}  // namespace caffeonspark::comm
