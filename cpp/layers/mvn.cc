// MVN (formulas and defaults in mvn.h). Tests: tests/layers/test_mvn.py.
#include "layers/mvn.h"

#include <cmath>

#include "core/parallel.h"

namespace caffeonspark {

void MVNLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("mvn_param");
  normalize_variance_ = p.flag("normalize_variance");
  across_channels_ = p.flag("across_channels");
  eps_ = p.real("eps");
}

void MVNLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() >= 1, ShapeError, "needs an input with at least one axis, got ",
                  x.shape_string());
  // Missing trailing axes count as 1, as in Caffe's (num, channels, height, width) view.
  const int64_t channels = x.num_axes() > 1 ? x.shape(1) : 1;
  rows_ = across_channels_ ? x.shape(0) : x.shape(0) * channels;
  dim_ = rows_ == 0 ? 0 : x.count() / rows_;
  scale_.assign(rows_, 1.0f);
  if (normalize_variance_) normalized_.ReshapeLike(x);
  top[0]->ReshapeLike(x);
}

void MVNLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  float* keep = normalize_variance_ ? normalized_.mutable_data() : nullptr;
  const int64_t dim = dim_;
  const bool variance = normalize_variance_;
  const double eps = eps_;
  ParallelFor(rows_, rows_ * dim_, [&](int64_t r) {
    const float* in = x + r * dim;  // in place, x and y are the same buffer
    float* out = y + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += in[i];
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    for (int64_t i = 0; i < dim; ++i) out[i] = in[i] - mean;
    if (!variance) return;
    double sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sq += static_cast<double>(out[i]) * out[i];
    const double std_dev = std::sqrt(sq / static_cast<double>(dim));
    const float k = static_cast<float>(1.0 / (std_dev + eps));
    scale_[r] = k;
    for (int64_t i = 0; i < dim; ++i) {
      out[i] *= k;
      keep[r * dim + i] = out[i];
    }
  });
}

void MVNLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();  // may alias dy in place: row sums come first
  const float* y = normalize_variance_ ? normalized_.data() : nullptr;
  const int64_t dim = dim_;
  ParallelFor(rows_, rows_ * dim_, [&](int64_t r) {
    const int64_t base = r * dim;
    double sum_dy = 0.0, sum_dy_y = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      sum_dy += dy[base + i];
      if (y) sum_dy_y += static_cast<double>(dy[base + i]) * y[base + i];
    }
    const float mean_dy = static_cast<float>(sum_dy / static_cast<double>(dim));
    if (!y) {
      for (int64_t i = 0; i < dim; ++i) dx[base + i] = dy[base + i] - mean_dy;
      return;
    }
    const float mean_dy_y = static_cast<float>(sum_dy_y / static_cast<double>(dim));
    const float k = scale_[r];
    for (int64_t i = 0; i < dim; ++i) {
      dx[base + i] = (dy[base + i] - mean_dy - y[base + i] * mean_dy_y) * k;
    }
  });
}

}  // namespace caffeonspark
