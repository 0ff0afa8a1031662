// BatchNorm (formulas and defaults in batch_norm.h). Tests: tests/layers/test_batch_norm.py.
#include "layers/batch_norm.h"

#include <cmath>
#include <memory>

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {
constexpr int kNumStatBlobs = 3;  // mean sum, variance sum, scale factor
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

void BatchNormLayer::BatchStatistics(const float* x) {
  const int64_t num = num_, spatial = spatial_, channels = channels_;
  const double m = static_cast<double>(num * spatial);
  ParallelFor(channels, num * channels * spatial, [&](int64_t c) {
    double sum = 0.0;
    for (int64_t n = 0; n < num; ++n) {
      const float* row = x + (n * channels + c) * spatial;
      for (int64_t i = 0; i < spatial; ++i) sum += row[i];
    }
    const double mu = m > 0 ? sum / m : 0.0;
    double sq = 0.0;
    for (int64_t n = 0; n < num; ++n) {
      const float* row = x + (n * channels + c) * spatial;
      for (int64_t i = 0; i < spatial; ++i) sq += (row[i] - mu) * (row[i] - mu);
    }
    mean_[c] = mu;
    var_[c] = m > 0 ? sq / m : 0.0;
  });
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
  const float* x = bottom[0]->data();
  if (use_global_stats_) {
    const float s = blobs_[2]->data()[0];
    const double f = s == 0.0f ? 0.0 : 1.0 / s;
    for (int c = 0; c < channels_; ++c) {
      mean_[c] = f * blobs_[0]->data()[c];
      var_[c] = f * blobs_[1]->data()[c];
    }
  } else {
    BatchStatistics(x);
    UpdateRunningSums();
  }
  for (int c = 0; c < channels_; ++c) {
    inv_std_[c] = static_cast<float>(1.0 / std::sqrt(var_[c] + static_cast<double>(eps_)));
  }
  const int64_t channels = channels_, spatial = spatial_;
  float* y = top[0]->mutable_data();
  float* saved = normalized_.mutable_data();
  ParallelFor(num_ * channels, num_ * channels * spatial, [&](int64_t row) {
    const int64_t c = row % channels;
    const float mu = static_cast<float>(mean_[c]), k = inv_std_[c];
    const float* in = x + row * spatial;  // in place, x and y are the same buffer
    float* out = y + row * spatial;
    float* keep = saved + row * spatial;
    for (int64_t i = 0; i < spatial; ++i) {
      out[i] = (in[i] - mu) * k;
      keep[i] = out[i];
    }
  });
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
      const float k = inv_std_[row % channels];
      for (int64_t i = 0; i < spatial; ++i) dx[row * spatial + i] = dy[row * spatial + i] * k;
    });
    return;
  }
  const double m = static_cast<double>(num * spatial);
  ParallelFor(channels, num * channels * spatial, [&](int64_t c) {
    double sum_dy = 0.0, sum_dy_y = 0.0;
    for (int64_t n = 0; n < num; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      for (int64_t i = 0; i < spatial; ++i) {
        sum_dy += dy[base + i];
        sum_dy_y += static_cast<double>(dy[base + i]) * y[base + i];
      }
    }
    const float mean_dy = m > 0 ? static_cast<float>(sum_dy / m) : 0.0f;
    const float mean_dy_y = m > 0 ? static_cast<float>(sum_dy_y / m) : 0.0f;
    const float k = inv_std_[c];
    for (int64_t n = 0; n < num; ++n) {
      const int64_t base = (n * channels + c) * spatial;
      for (int64_t i = 0; i < spatial; ++i) {
        dx[base + i] = (dy[base + i] - mean_dy - mean_dy_y * y[base + i]) * k;
      }
    }
  });
}

}  // namespace caffeonspark
