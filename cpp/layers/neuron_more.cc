// Threshold, Clip, Swish (formulas in neuron_more.h). Tests: tests/layers/test_neuron_more.py.
#include "layers/neuron_more.h"

#include <algorithm>
#include <cmath>

#include "core/parallel.h"

namespace caffeonspark {

namespace {
inline float Sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }
}  // namespace

// ---- Threshold -------------------------------------------------------------------------

void ThresholdLayer::LayerSetUp(const Tensors&, const Tensors&) {
  threshold_ = spec_.params.child("threshold_param").real("threshold");
}

void ThresholdLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float t = threshold_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = x[i] > t ? 1.0f : 0.0f; });
}

void ThresholdLayer::Backward_cpu(const Tensors&, const std::vector<bool>& propagate_down,
                                  const Tensors&) {
  COS_LAYER_CHECK(!propagate_down[0], ConfigError,
                  "Threshold has no gradient but a backward pass asked for one; give the layer "
                  "propagate_down: false and leave force_backward off (it overrides propagate_down)");
}

// ---- Clip ------------------------------------------------------------------------------

void ClipLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("clip_param");
  COS_LAYER_CHECK(p.size("min") && p.size("max"), ConfigError,
                  "clip_param.min and clip_param.max are both required");
  min_ = p.real("min");
  max_ = p.real("max");
}

void ClipLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float lo = min_, hi = max_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = std::max(lo, std::min(x[i], hi)); });
}

void ClipLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const float lo = min_, hi = max_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
  });
}

// ---- Swish -----------------------------------------------------------------------------

void SwishLayer::LayerSetUp(const Tensors&, const Tensors&) {
  beta_ = spec_.params.child("swish_param").real("beta");
}

void SwishLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const float b = beta_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = x[i] * Sigmoid(b * x[i]); });
}

void SwishLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const float b = beta_;
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    const float s = Sigmoid(b * x[i]);
    const float y = x[i] * s;
    dx[i] = dy[i] * (b * y + s * (1.0f - b * y));
  });
}

}  // namespace caffeonspark
