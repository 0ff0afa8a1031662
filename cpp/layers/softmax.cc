// Softmax and SoftmaxWithLoss (rules in softmax.h). Tests: tests/layers/test_softmax.py.
#include "layers/softmax.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

void SoftmaxForward(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner) {
  ParallelFor(outer, outer * channels * inner, [&](int64_t o) {
    const float* xo = x + o * channels * inner;
    float* yo = y + o * channels * inner;
    for (int64_t i = 0; i < inner; ++i) {
      float max_value = -FLT_MAX;
      for (int64_t c = 0; c < channels; ++c) max_value = std::max(max_value, xo[c * inner + i]);
      float sum = 0;
      for (int64_t c = 0; c < channels; ++c) {
        float e = std::exp(xo[c * inner + i] - max_value);
        yo[c * inner + i] = e;
        sum += e;
      }
      for (int64_t c = 0; c < channels; ++c) yo[c * inner + i] /= sum;
    }
  });
}

void SoftmaxLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  axis_ = bottom[0]->CanonicalAxis(spec_.params.child("softmax_param").integer("axis"));
  outer_ = bottom[0]->count(0, axis_);
  channels_ = bottom[0]->shape(axis_);
  inner_ = bottom[0]->count(axis_ + 1);
  top[0]->ReshapeLike(*bottom[0]);
}

void SoftmaxLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  SoftmaxForward(bottom[0]->data(), top[0]->mutable_data(), outer_, channels_, inner_);
}

void SoftmaxLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  if (!propagate_down[0]) return;
  // dx = y * (dy - sum_c dy*y), per position.
  const float* y = top[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      int64_t base = o * channels_ * inner_ + i;
      float s = 0;
      for (int64_t c = 0; c < channels_; ++c) s += dy[base + c * inner_] * y[base + c * inner_];
      for (int64_t c = 0; c < channels_; ++c)
        dx[base + c * inner_] = y[base + c * inner_] * (dy[base + c * inner_] - s);
    }
  }
}

void SoftmaxWithLossLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  COS_LAYER_CHECK(top.size() == 1 || spec_.loss_weights.size() == 2, ConfigError,
                  "with a second (probability) top, give two loss_weight values (e.g. 1 and 0)");
  LayerSpec inner = spec_;
  inner.type = "Softmax";
  inner.loss_weights.clear();
  softmax_ = std::make_unique<SoftmaxLayer>(inner);
  const Params& loss = spec_.params.child("loss_param");
  has_ignore_label_ = loss.size("ignore_label") > 0;
  if (has_ignore_label_) ignore_label_ = loss.integer("ignore_label");
  // `normalization_set` comes from python/caffeonspark/engine.py; without it, a written
  // `normalize` (the field has no default, so it is present only when written) decides.
  const bool normalization_set = loss.size("normalization_set") && loss.flag("normalization_set");
  if (normalization_set || loss.size("normalize") == 0) {
    normalization_ = loss.str("normalization");
  } else {
    normalization_ = loss.flag("normalize") ? "VALID" : "BATCH_SIZE";
  }
}

void SoftmaxWithLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  softmax_->Reshape({bottom[0]}, {&prob_});
  axis_ = bottom[0]->CanonicalAxis(spec_.params.child("softmax_param").integer("axis"));
  outer_ = bottom[0]->count(0, axis_);
  inner_ = bottom[0]->count(axis_ + 1);
  COS_LAYER_CHECK(outer_ * inner_ == bottom[1]->count(), ShapeError, "label count ",
                  bottom[1]->count(), " must equal outer*inner = ", outer_ * inner_,
                  " of the scores ", bottom[0]->shape_string(), " (labels ",
                  bottom[1]->shape_string(), ")");
  top[0]->Reshape({});
  if (top.size() > 1) top[1]->ReshapeLike(*bottom[0]);
}

float SoftmaxWithLossLayer::Normalizer(int64_t valid_count) const {
  double norm;
  if (normalization_ == "FULL") {
    norm = static_cast<double>(outer_ * inner_);
  } else if (normalization_ == "VALID") {
    norm = static_cast<double>(valid_count);
  } else if (normalization_ == "BATCH_SIZE") {
    norm = static_cast<double>(outer_);
  } else if (normalization_ == "NONE") {
    norm = 1.0;
  } else {
    throw ConfigError(Msg(where(), "unknown normalization '", normalization_, "'"));
  }
  return static_cast<float>(std::max(1.0, norm));
}

void SoftmaxWithLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  softmax_->Forward({bottom[0]}, {&prob_});
  const float* p = prob_.data();
  const float* label = bottom[1]->data();
  const int64_t channels = bottom[0]->shape(axis_);
  double loss = 0;
  int64_t valid = 0;
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      int l = static_cast<int>(label[o * inner_ + i]);
      if (has_ignore_label_ && l == ignore_label_) continue;
      COS_LAYER_CHECK(l >= 0 && l < channels, ShapeError, "label ", l, " outside [0, ", channels, ")");
      loss -= std::log(std::max(p[(o * channels + l) * inner_ + i], FLT_MIN));
      ++valid;
    }
  }
  top[0]->mutable_data()[0] = static_cast<float>(loss / Normalizer(valid));
  if (top.size() == 2) copy(prob_.count(), p, top[1]->mutable_data());
}

void SoftmaxWithLossLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                        const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError, "cannot backpropagate to the label input");
  if (!propagate_down[0]) return;
  float* dx = bottom[0]->mutable_diff();
  copy(prob_.count(), prob_.data(), dx);
  const float* label = bottom[1]->data();
  const int64_t channels = bottom[0]->shape(axis_);
  int64_t valid = 0;
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      int l = static_cast<int>(label[o * inner_ + i]);
      if (has_ignore_label_ && l == ignore_label_) {
        for (int64_t c = 0; c < channels; ++c) dx[(o * channels + c) * inner_ + i] = 0;
        continue;
      }
      dx[(o * channels + l) * inner_ + i] -= 1;
      ++valid;
    }
  }
  scale(prob_.count(), top[0]->diff()[0] / Normalizer(valid), dx);
}

}  // namespace caffeonspark
