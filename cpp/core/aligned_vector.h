// AlignedVector<T>: std::vector whose storage starts on a 64-byte boundary (a cache line, one
// AVX-512 vector), for the scratch buffers of vector kernels (convolution workspaces): rows of
// 16-multiple floats then never split a cache line. Tested through its users
// (tests/layers/test_convolution.py).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace caffeonspark {

template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};

  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlignment); }

  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const { return false; }
};

template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace caffeonspark
