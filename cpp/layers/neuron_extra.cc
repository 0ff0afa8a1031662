// Power, Exp, Log, PReLU (formulas in neuron_extra.h). Tests: tests/layers/test_neuron_extra.py.
#include "layers/neuron_extra.h"

#include <algorithm>
#include <cmath>

#include "core/filler.h"
#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

// ---- Power -----------------------------------------------------------------------------

void PowerLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("power_param");
  power_ = p.real("power");
  scale_ = p.real("scale");
  shift_ = p.real("shift");
}

void PowerLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float a = scale_, b = shift_, p = power_;
  if (p == 1.0f) {
    ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = b + a * x[i]; });
  } else if (p == 2.0f) {
    ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = (b + a * x[i]) * (b + a * x[i]); });
  } else {
    ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = std::pow(b + a * x[i], p); });
  }
}

void PowerLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const float a = scale_, b = shift_, p = power_, diff_scale = power_ * scale_;
  if (diff_scale == 0.0f || p == 1.0f) {
    ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = diff_scale * dy[i]; });
  } else if (p == 2.0f) {
    ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = diff_scale * (b + a * x[i]) * dy[i]; });
  } else {
    ParallelFor(bottom[0]->count(), [&](int64_t i) {
      dx[i] = diff_scale * std::pow(b + a * x[i], p - 1.0f) * dy[i];
    });
  }
}

// ---- Exp -------------------------------------------------------------------------------

void ExpLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("exp_param");
  const float base = p.real("base");
  COS_LAYER_CHECK(base == -1.0f || base > 0.0f, ConfigError,
                  "exp_param.base must be -1 (for e) or positive, got ", base);
  const double log_base = base == -1.0f ? 1.0 : std::log(static_cast<double>(base));
  inner_scale_ = static_cast<float>(log_base * p.real("scale"));
  outer_scale_ = static_cast<float>(std::exp(log_base * p.real("shift")));
}

void ExpLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float inner = inner_scale_, outer = outer_scale_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = outer * std::exp(inner * x[i]); });
}

void ExpLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* y = top[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const float inner = inner_scale_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = dy[i] * y[i] * inner; });
}

// ---- Log -------------------------------------------------------------------------------

void LogLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("log_param");
  const float base = p.real("base");
  COS_LAYER_CHECK(base == -1.0f || (base > 0.0f && base != 1.0f), ConfigError,
                  "log_param.base must be -1 (for e) or positive and not 1, got ", base);
  base_scale_ = base == -1.0f ? 1.0f : static_cast<float>(1.0 / std::log(static_cast<double>(base)));
  scale_ = p.real("scale");
  shift_ = p.real("shift");
}

void LogLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float a = scale_, b = shift_, s = base_scale_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = std::log(b + a * x[i]) * s; });
}

void LogLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const float a = scale_, b = shift_, numerator = scale_ * base_scale_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = dy[i] * numerator / (b + a * x[i]); });
}

// ---- PReLU -----------------------------------------------------------------------------

void PReLULayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 2, ShapeError, "needs an input with at least 2 axes, got ",
                  bottom[0]->shape_string());
  const Params& p = spec_.params.child("prelu_param");
  channel_shared_ = p.flag("channel_shared");
  channels_ = bottom[0]->shape(1);
  auto slopes = std::make_shared<Tensor>(std::vector<int>{channel_shared_ ? 1 : channels_});
  const bool filler_set = p.size("filler_set") ? p.flag("filler_set") : p.size("filler") > 0;
  if (filler_set) {
    Fill(p.child("filler"), slopes.get(), where() + "filler: ");
  } else {
    fill(slopes->count(), 0.25f, slopes->mutable_data());
  }
  blobs_ = {slopes};
}

void PReLULayer::Reshape(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 2 && bottom[0]->shape(1) == channels_, ShapeError,
                  "input ", bottom[0]->shape_string(), " must keep the ", channels_,
                  " channels (axis 1) the slopes were made for");
  inner_ = bottom[0]->count(2);
  top[0]->ReshapeLike(*bottom[0]);
}

void PReLULayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float* a = blobs_[0]->data();
  const int64_t inner = inner_, channels = channels_;
  const bool shared = channel_shared_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    const float slope = a[shared ? 0 : (i / inner) % channels];
    y[i] = std::max(x[i], 0.0f) + slope * std::min(x[i], 0.0f);
  });
}

void PReLULayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  const int64_t n = bottom[0]->count();
  const int64_t inner = inner_, channels = channels_;
  if (param_propagate_down(0)) {
    // Summed in double per channel, then added to the slope gradient.
    std::vector<double> sums(static_cast<size_t>(channels), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      if (x[i] <= 0) sums[static_cast<size_t>((i / inner) % channels)] += static_cast<double>(dy[i]) * x[i];
    }
    float* da = blobs_[0]->mutable_diff();
    for (int64_t c = 0; c < channels; ++c) da[channel_shared_ ? 0 : c] += static_cast<float>(sums[c]);
  }
  if (propagate_down[0]) {
    const float* a = blobs_[0]->data();
    float* dx = bottom[0]->mutable_diff();
    const bool shared = channel_shared_;
    ParallelFor(n, [&](int64_t i) {
      const float slope = a[shared ? 0 : (i / inner) % channels];
      dx[i] = dy[i] * (x[i] > 0 ? 1.0f : slope);
    });
  }
}

}  // namespace caffeonspark
