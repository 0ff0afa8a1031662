// Element-wise activations (see neuron.h for the formulas). Tests: tests/layers/test_neuron.py.
#include "layers/neuron.h"

#include <algorithm>
#include <cmath>

#include "core/math.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace caffeonspark {

void NeuronLayer::SaveInputIfInPlace(const Tensors& bottom, const Tensors& top) {
  in_place_ = bottom[0] == top[0];
  if (!in_place_) return;
  saved_input_.ReshapeLike(*bottom[0]);
  copy(bottom[0]->count(), bottom[0]->data(), saved_input_.mutable_data());
}

const float* NeuronLayer::Input(const Tensors& bottom) const {
  return in_place_ ? saved_input_.data() : bottom[0]->data();
}

// ---- ReLU ------------------------------------------------------------------------------

namespace {
// dx = dy * (x > 0 ? 1 : slope), dx may be dy; plain arguments so the loop vectorises.
void ReLUGradient(const float* x, const float* dy, int64_t n, float slope, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (x[i] > 0 ? 1.0f : slope);
}
}  // namespace

void ReLULayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float slope = spec_.params.child("relu_param").real("negative_slope");
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    y[i] = std::max(x[i], 0.0f) + slope * std::min(x[i], 0.0f);
  });
}

void ReLULayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float slope = spec_.params.child("relu_param").real("negative_slope");
  // In place, x is already y; for slope >= 0 the sign (all the gradient needs) is the same.
  const float* x = bottom[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelForRanges(bottom[0]->count(), [&](int64_t begin, int64_t end) {
    ReLUGradient(x + begin, dy + begin, end - begin, slope, dx + begin);
  });
}

// ---- Sigmoid, TanH: the gradient reads the output ---------------------------------------

void SigmoidLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  // 0.5 tanh(x/2) + 0.5 equals 1/(1+e^-x) and never overflows.
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = 0.5f * std::tanh(0.5f * x[i]) + 0.5f; });
}

void SigmoidLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* y = top[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = dy[i] * y[i] * (1.0f - y[i]); });
}

void TanHLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = std::tanh(x[i]); });
}

void TanHLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* y = top[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelFor(bottom[0]->count(), [&](int64_t i) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); });
}

// ---- AbsVal, BNLL, ELU: the gradient reads the input -----------------------------------

void AbsValLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(bottom[0]->count(), [&](int64_t i) { y[i] = std::fabs(x[i]); });
}

void AbsValLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                               const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    dx[i] = dy[i] * static_cast<float>((x[i] > 0) - (x[i] < 0));
  });
}

void BNLLLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    y[i] = std::max(x[i], 0.0f) + std::log1p(std::exp(-std::fabs(x[i])));
  });
}

void BNLLLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    dx[i] = dy[i] * (0.5f * std::tanh(0.5f * x[i]) + 0.5f);
  });
}

void ELULayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SaveInputIfInPlace(bottom, top);
  const float alpha = spec_.params.child("elu_param").real("alpha");
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    y[i] = x[i] > 0 ? x[i] : alpha * std::expm1(x[i]);
  });
}

void ELULayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float alpha = spec_.params.child("elu_param").real("alpha");
  const float* x = Input(bottom);
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ParallelFor(bottom[0]->count(), [&](int64_t i) {
    dx[i] = x[i] > 0 ? dy[i] : dy[i] * alpha * std::exp(x[i]);
  });
}

// ---- Dropout ---------------------------------------------------------------------------

void DropoutLayer::LayerSetUp(const Tensors&, const Tensors&) {
  ratio_ = spec_.params.child("dropout_param").real("dropout_ratio");
  COS_LAYER_CHECK(ratio_ >= 0.0f && ratio_ < 1.0f, ConfigError,
                  "dropout_param.dropout_ratio must be in [0, 1), got ", ratio_);
  scale_ = 1.0f / (1.0f - ratio_);
}

void DropoutLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const int64_t n = bottom[0]->count();
  if (phase_ != Phase::kTrain) {
    if (x != y) copy(n, x, y);
    return;
  }
  mask_.resize(static_cast<size_t>(n));
  rng_bernoulli(n, 1.0f - ratio_, mask_.data());
  const unsigned* mask = mask_.data();
  const float s = scale_;
  ParallelFor(n, [&](int64_t i) { y[i] = x[i] * static_cast<float>(mask[i]) * s; });
}

void DropoutLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const int64_t n = bottom[0]->count();
  if (phase_ != Phase::kTrain) {
    if (dx != dy) copy(n, dy, dx);
    return;
  }
  COS_LAYER_CHECK(static_cast<int64_t>(mask_.size()) == n, InternalError,
                  "backward without a TRAIN forward of the same shape");
  const unsigned* mask = mask_.data();
  const float s = scale_;
  ParallelFor(n, [&](int64_t i) { dx[i] = dy[i] * static_cast<float>(mask[i]) * s; });
}

}  // namespace caffeonspark
