#include "core/tensor.h"

#include <algorithm>
#include <climits>
#include <sstream>

#include "core/errors.h"

namespace caffeonspark {

void Tensor::Reshape(const std::vector<int>& shape) {
  int64_t count = 1;
  for (int dim : shape) {
    COS_CHECK(dim >= 0, ShapeError, "negative dimension in shape (", [&] {
      std::ostringstream s;
      for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
      return s.str();
    }(), ")");
    count *= dim;
    COS_CHECK(count <= INT_MAX, ShapeError, "tensor larger than 2^31 elements");
  }
  shape_ = shape;
  count_ = count;
  if (count_ > capacity_ || !data_) {
    capacity_ = count_;
    data_ = std::make_shared<SyncedMemory>(capacity_ * sizeof(float));
    diff_ = std::make_shared<SyncedMemory>(capacity_ * sizeof(float));
  }
}

int64_t Tensor::count(int start, int end) const {
  COS_CHECK(start >= 0 && start <= end && end <= num_axes(), ShapeError, "axis range [", start,
            ",", end, ") outside a ", num_axes(), "-D tensor");
  int64_t c = 1;
  for (int i = start; i < end; ++i) c *= shape_[i];
  return c;
}

int Tensor::CanonicalAxis(int axis) const {
  int n = num_axes();
  COS_CHECK(axis >= -n && axis < n, ShapeError, "axis ", axis, " out of range for a ", n,
            "-D tensor ", shape_string());
  return axis < 0 ? axis + n : axis;
}

std::string Tensor::shape_string() const {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape_.size(); ++i) s << (i ? ", " : "") << shape_[i];
  s << ")";
  return s.str();
}

const float* Tensor::data() const {
  return data_ ? static_cast<const float*>(data_->host_data()) : nullptr;
}
const float* Tensor::diff() const {
  return diff_ ? static_cast<const float*>(diff_->host_data()) : nullptr;
}
float* Tensor::mutable_data() {
  return data_ ? static_cast<float*>(data_->mutable_host_data()) : nullptr;
}
float* Tensor::mutable_diff() {
  return diff_ ? static_cast<float*>(diff_->mutable_host_data()) : nullptr;
}

void Tensor::ShareData(const Tensor& other) {
  COS_CHECK(count_ == other.count_, ShapeError, "cannot share data between tensors of shapes ",
            shape_string(), " and ", other.shape_string());
  data_ = other.data_;
  capacity_ = std::min(capacity_, other.capacity_);
}

std::shared_ptr<SyncedMemory> Tensor::SwapData(std::shared_ptr<SyncedMemory> memory) {
  COS_CHECK(memory && memory->size() >= static_cast<size_t>(count_) * sizeof(float), ShapeError,
            "a swapped-in buffer of ", memory ? memory->size() : 0, " bytes is too small for ",
            shape_string());
  std::swap(data_, memory);
  const size_t diff_bytes = diff_ ? diff_->size() : 0;
  capacity_ = static_cast<int64_t>(std::min(data_->size(), diff_bytes) / sizeof(float));
  return memory;
}

void Tensor::ShareDiff(const Tensor& other) {
  COS_CHECK(count_ == other.count_, ShapeError, "cannot share diff between tensors of shapes ",
            shape_string(), " and ", other.shape_string());
  diff_ = other.diff_;
  capacity_ = std::min(capacity_, other.capacity_);
}

double Tensor::sumsq_diff() const {
  const float* d = diff();
  double s = 0;
  for (int64_t i = 0; i < count_; ++i) s += static_cast<double>(d[i]) * d[i];
  return s;
}

void Tensor::scale_diff(float factor) {
  float* d = mutable_diff();
  for (int64_t i = 0; i < count_; ++i) d[i] *= factor;
}

}  // namespace caffeonspark
