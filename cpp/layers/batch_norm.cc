// BatchNorm (formulas and defaults in batch_norm.h). Tests: tests/layers/test_batch_norm.py.
#include "layers/batch_norm.h"

#include <cmath>
#include <memory>

#include "core/lane_sums.h"
#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {
constexpr int kNumStatBlobs = 3;  // mean sum, variance sum, scale factor

float InverseStd(double var, float eps) {
  return static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
}

// The row loops take everything as plain arguments, so the compiler can keep the scalars
// in registers and vectorise (out may be in, keep never is).
void NormalizeRow(const float* in, int64_t n, float mu, float k, float* out,
                  float* __restrict keep) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = (in[i] - mu) * k;
    out[i] = v;
    keep[i] = v;
  }
}

void ScaleRow(const float* in, int64_t n, float k, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * k;
}

// dx = (dy - mean_dy - mean_dy_y * y) * k; dx may be dy.
void BackwardRow(const float* dy, const float* y, int64_t n, float mean_dy, float mean_dy_y,
                 float k, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = (dy[i] - mean_dy - mean_dy_y * y[i]) * k;
}
}  // namespace

void BatchNormLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("batch_norm_param");
  moving_average_fraction_ = p.real("moving_average_fraction");
  eps_ = p.real("eps");
  use_global_stats_ = p.size("use_global_stats") ? p.flag("use_global_stats") : phase_ == Phase::kTest;
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 1, ShapeError, "needs an input with at least one axis, got ",
                  bottom[0]->shape_string());
  channels_ = bottom[0]->num_axes() == 1 ? 1 : bottom[0]->shape(1);
  blobs_ = {std::make_shared<Tensor>(std::vector<int>{channels_}),
            std::make_shared<Tensor>(std::vector<int>{channels_}),
            std::make_shared<Tensor>(std::vector<int>{1})};
  for (auto& blob : blobs_) fill(blob->count(), 0.0f, blob->mutable_data());
  // The statistics are not learned: a missing ParamSpec gets lr_mult 0, a given one must say 0.
  auto& specs = spec_.param_specs;
  for (int i = 0; i < kNumStatBlobs; ++i) {
    if (static_cast<int>(specs.size()) == i) {
      ParamSpecInfo fixed;
      fixed.lr_mult = 0.0f;
      fixed.has_lr_mult = true;
      specs.push_back(fixed);
    } else {
      COS_LAYER_CHECK(specs[i].lr_mult == 0.0f, ConfigError, "param ", i, " has lr_mult ",
                      specs[i].lr_mult, "; the BatchNorm statistics are not learned, so lr_mult "
                      "must be 0 (use a Scale layer for a learned scale and shift)");
    }
  }
}

void BatchNormLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() >= 1, ShapeError, "needs an input with at least one axis, got ",
                  x.shape_string());
  const int channels = x.num_axes() == 1 ? 1 : x.shape(1);
  COS_LAYER_CHECK(channels == channels_, ShapeError, "input ", x.shape_string(), " has ", channels,
                  " channels but the layer was set up for ", channels_);
  num_ = x.shape(0);
  spatial_ = num_ * channels_ == 0 ? 0 : x.count() / (num_ * channels_);
  mean_.assign(channels_, 0.0);
  var_.assign(channels_, 0.0);
  inv_std_.assign(channels_, 0.0f);
  normalized_.ReshapeLike(x);
  top[0]->ReshapeLike(x);
}

void BatchNormLayer::ChannelStatistics(const float* x, int64_t c) {
  const int64_t num = num_, spatial = spatial_, channels = channels_;
  const double m = static_cast<double>(num * spatial);
  LaneSum sum;
  for (int64_t n = 0; n < num; ++n) AddRow(x + (n * channels + c) * spatial, spatial, sum);
  const double mu = m > 0 ? sum.Total() / m : 0.0;
  LaneSum sq;
  for (int64_t n = 0; n < num; ++n) {
    AddSquaredDeviations(x + (n * channels + c) * spatial, spatial, mu, sq);
  }
  mean_[c] = mu;
  var_[c] = m > 0 ? sq.Total() / m : 0.0;
}

void BatchNormLayer::UpdateRunningSums() {
  const float a = moving_average_fraction_;
  const double m = static_cast<double>(num_ * spatial_);
  const double correction = m > 1 ? m / (m - 1) : 1.0;
  float* scale = blobs_[2]->mutable_data();
  scale[0] = scale[0] * a + 1.0f;
  float* mean_sum = blobs_[0]->mutable_data();
  float* var_sum = blobs_[1]->mutable_data();
  for (int c = 0; c < channels_; ++c) {
    mean_sum[c] = static_cast<float>(a * mean_sum[c] + mean_[c]);
    var_sum[c] = static_cast<float>(a * var_sum[c] + correction * var_[c]);
  }
}

void BatchNormLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const int64_t num = num_, channels = channels_, spatial = spatial_;
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();  // in place, x and y are the same buffer
  float* saved = normalized_.mutable_data();
  auto normalize_row = [&](int64_t row) {
    const int64_t c = row % channels;
    NormalizeRow(x + row * spatial, spatial, static_cast<float>(mean_[c]), inv_std_[c],
                 y + row * spatial, saved + row * spatial);
  };
  if (use_global_stats_) {
    const float s = blobs_[2]->data()[0];
    const double f = s == 0.0f ? 0.0 : 1.0 / s;
    for (int c = 0; c < channels_; ++c) {
      mean_[c] = f * blobs_[0]->data()[c];
      var_[c] = f * blobs_[1]->data()[c];
      inv_std_[c] = InverseStd(var_[c], eps_);
    }
    ParallelFor(num * channels, num * channels * spatial, normalize_row);
    return;
  }
  // Each channel's statistics, then its normalisation, on one thread: the second and third
  // passes over the channel find it in that core's cache.
  ParallelFor(channels, 3 * num * channels * spatial, [&](int64_t c) {
    ChannelStatistics(x, c);
    inv_std_[c] = InverseStd(var_[c], eps_);
    for (int64_t n = 0; n < num; ++n) normalize_row(n * channels + c);
  });
  UpdateRunningSums();
}

void BatchNormLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                  const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const int64_t num = num_, channels = channels_, spatial = spatial_;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();  // may alias dy in place: per-channel sums come first
  const float* y = normalized_.data();
  if (use_global_stats_) {
    ParallelFor(num * channels, num * channels * spatial, [&](int64_t row) {
      ScaleRow(dy + row * spatial, spatial, inv_std_[row % channels], dx + row * spatial);
    });
    return;
  }
  const double m = static_cast<double>(num * spatial);
  ParallelFor(channels, 3 * num * channels * spatial, [&](int64_t c) {
    LaneSum sum_dy, sum_dy_y;
    for (int64_t n = 0; n < num; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      AddRowAndProduct(dy + base, y + base, spatial, sum_dy, sum_dy_y);
    }
    const float mean_dy = m > 0 ? static_cast<float>(sum_dy.Total() / m) : 0.0f;
    const float mean_dy_y = m > 0 ? static_cast<float>(sum_dy_y.Total() / m) : 0.0f;
    for (int64_t n = 0; n < num; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      BackwardRow(dy + base, y + base, spatial, mean_dy, mean_dy_y, inv_std_[c], dx + base);
    }
  });
}

}  // namespace caffeonspark
