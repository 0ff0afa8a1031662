// SyncedMemory: one buffer with a host copy and (in CUDA builds) a device copy, and a head
// state saying which copy is current. CPU-only builds keep the same state machine so the
// GPU path slots in without changing callers. Tests: tests/core/test_tensor.py.
#pragma once

#include <cstddef>

namespace caffeonspark {

class SyncedMemory {
 public:
  enum class Head { kUninitialized, kAtHost, kAtDevice, kSynced };

  explicit SyncedMemory(size_t bytes = 0);
  ~SyncedMemory();
  SyncedMemory(const SyncedMemory&) = delete;
  SyncedMemory& operator=(const SyncedMemory&) = delete;

  const void* host_data();
  void* mutable_host_data();
  const void* device_data();
  void* mutable_device_data();
  Head head() const { return head_; }
  size_t size() const { return bytes_; }

 private:
  void to_host();
  void to_device();

  size_t bytes_;
  void* host_ = nullptr;
  void* device_ = nullptr;
  Head head_ = Head::kUninitialized;
};

}  // namespace caffeonspark
