#include "comm/communicator.h"

namespace caffeonspark::comm {

Communicator::Communicator(std::unique_ptr<Transport> transport, CollectiveOptions options,
                           std::string transport_note)
    : transport_(std::move(transport)),
      transport_note_(std::move(transport_note)),
      allreduce_(*transport_, options),
      broadcast_(*transport_, options),
      barrier_(*transport_) {}

std::shared_ptr<Communicator> Communicator::ConnectTcp(Listener listener, JobIdentity me,
                                                       std::vector<std::string> addresses,
                                                       TcpOptions tcp, CollectiveOptions options) {
  auto transport = std::make_unique<TcpTransport>(std::move(listener), std::move(me),
                                                  std::move(addresses), tcp);
  return std::make_shared<Communicator>(std::move(transport), options);
}

std::shared_ptr<Communicator> Communicator::Connect(Listener listener, JobIdentity me,
                                                    std::vector<std::string> addresses,
                                                    TcpOptions tcp, UcxOptions ucx,
                                                    CollectiveOptions options) {
  ConnectedTransport connected = ConnectTransport(std::move(listener), std::move(me),
                                                  std::move(addresses), tcp, std::move(ucx));
  return std::make_shared<Communicator>(std::move(connected.transport), options,
                                        std::move(connected.note));
}

void Communicator::RegisterBuffer(const void* data, size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  transport_->RegisterBuffer(data, bytes);
}

void Communicator::UnregisterBuffer(const void* data) {
  std::lock_guard<std::mutex> lock(mutex_);
  transport_->UnregisterBuffer(data);
}

Communicator::~Communicator() {
  try {
    Close();
  } catch (const std::exception&) {
    // Destructors do not throw; peers see the connections close.
  }
}

bool Communicator::failed() const { return transport_->failed(); }

void Communicator::Allreduce(float* data, size_t count, bool average) {
  std::lock_guard<std::mutex> lock(mutex_);
  allreduce_.Run(data, count, average ? 1.0f / static_cast<float>(world_size()) : 1.0f);
}

void Communicator::Broadcast(void* data, size_t bytes, int root) {
  std::lock_guard<std::mutex> lock(mutex_);
  broadcast_.Run(data, bytes, root);
}

void Communicator::Barrier() {
  std::lock_guard<std::mutex> lock(mutex_);
  barrier_.Run();
}

void Communicator::Idle(double seconds) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) transport_->Idle(seconds);
}

void Communicator::Abort(const std::string& reason) {
  transport_->RequestAbort(reason);
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) transport_->Abort(reason);
}

void Communicator::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  transport_->Close();
}

}  // namespace caffeonspark::comm
