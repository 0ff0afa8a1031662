// Host buffers are 64-byte aligned (AVX-512 friendly) and zero-filled on first touch, as
// Caffe's are. This version has no CUDA path: the device side of the state machine raises
// CudaError ("built without CUDA").
#include "core/synced_memory.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/errors.h"

namespace caffeonspark {

namespace {
constexpr size_t kAlign = 64;

void* AlignedAlloc(size_t bytes) {
  size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  void* ptr = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
  if (ptr == nullptr) throw std::bad_alloc();
  return ptr;
}
}  // namespace

SyncedMemory::SyncedMemory(size_t bytes) : bytes_(bytes) {}

SyncedMemory::~SyncedMemory() { std::free(host_); }

void SyncedMemory::to_host() {
  switch (head_) {
    case Head::kUninitialized:
      host_ = AlignedAlloc(bytes_);
      std::memset(host_, 0, bytes_);
      head_ = Head::kAtHost;
      break;
    case Head::kAtDevice:
      throw CudaError("tensor data lives on a GPU but this build has no CUDA");
    case Head::kAtHost:
    case Head::kSynced:
      break;
  }
}

void SyncedMemory::to_device() {
  throw CudaError("caffeonspark was built without CUDA: GPU memory is unavailable");
}

const void* SyncedMemory::host_data() {
  to_host();
  return host_;
}

void* SyncedMemory::mutable_host_data() {
  to_host();
  head_ = Head::kAtHost;
  return host_;
}

const void* SyncedMemory::device_data() {
  to_device();
  return device_;
}

void* SyncedMemory::mutable_device_data() {
  to_device();
  head_ = Head::kAtDevice;
  return device_;
}

}  // namespace caffeonspark
