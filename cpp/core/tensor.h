// Tensor: Caffe's Blob. An N-D float32 array with a value buffer (data) and a gradient
// buffer (diff), each a SyncedMemory. Reshape only reallocates when the capacity grows.
// Tests: tests/core/test_tensor.py.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/synced_memory.h"

namespace caffeonspark {

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const std::vector<int>& shape) { Reshape(shape); }

  void Reshape(const std::vector<int>& shape);
  void ReshapeLike(const Tensor& other) { Reshape(other.shape_); }

  const std::vector<int>& shape() const { return shape_; }
  int shape(int axis) const { return shape_[CanonicalAxis(axis)]; }
  int num_axes() const { return static_cast<int>(shape_.size()); }
  int64_t count() const { return count_; }
  // Product of dimensions in [start, end).
  int64_t count(int start, int end) const;
  int64_t count(int start) const { return count(start, num_axes()); }
  // Maps a possibly negative axis into [0, num_axes), raising ShapeError when out of range.
  int CanonicalAxis(int axis) const;
  std::string shape_string() const;

  const float* data() const;
  const float* diff() const;
  float* mutable_data();
  float* mutable_diff();

  // Shares the other tensor's buffers (in-place layers, weight sharing, Flatten/Reshape).
  void ShareData(const Tensor& other);
  void ShareDiff(const Tensor& other);

  const std::shared_ptr<SyncedMemory>& data_memory() const { return data_; }
  // Takes `memory` (at least count() floats) as the data buffer and returns the previous
  // one: how a data layer hands a prefetched batch to its top without copying it. Tensors
  // that shared the old buffer keep it (layers re-share in their Reshape, every Forward).
  std::shared_ptr<SyncedMemory> SwapData(std::shared_ptr<SyncedMemory> memory);
  const std::shared_ptr<SyncedMemory>& diff_memory() const { return diff_; }

  // Sum of squares of the gradient (the solver's clip_gradients norm), and an in-place
  // scale of it.
  double sumsq_diff() const;
  void scale_diff(float factor);

 private:
  std::vector<int> shape_;
  int64_t count_ = 0;
  int64_t capacity_ = 0;
  std::shared_ptr<SyncedMemory> data_;
  std::shared_ptr<SyncedMemory> diff_;
};

}  // namespace caffeonspark
