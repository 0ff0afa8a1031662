// SigmoidCrossEntropyLoss (rules in sigmoid_xent.h).
#include "layers/sigmoid_xent.h"

#include <cmath>

#include "layers/loss_normalization.h"

namespace caffeonspark {

void SigmoidCrossEntropyLossLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& loss = spec_.params.child("loss_param");
  has_ignore_label_ = loss.size("ignore_label") > 0;
  if (has_ignore_label_) ignore_label_ = loss.integer("ignore_label");
  normalization_ = LossNormalizationMode(loss, "BATCH_SIZE");
  LossNormalizer(normalization_, 1, 1, 1, where());  // rejects an unknown mode at set-up
}

void SigmoidCrossEntropyLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  const Tensor& t = *bottom[1];
  COS_LAYER_CHECK(x.num_axes() >= 1 && t.num_axes() >= 1 && x.shape(0) == t.shape(0), ShapeError,
                  "scores ", x.shape_string(), " and targets ", t.shape_string(),
                  " must have the same first dimension");
  COS_LAYER_CHECK(x.count() == t.count(), ShapeError, "scores ", x.shape_string(),
                  " and targets ", t.shape_string(), " must have the same count");
  outer_ = x.shape(0);
  inner_ = outer_ > 0 ? x.count() / outer_ : 0;
  top[0]->Reshape({});
}

void SigmoidCrossEntropyLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  const float* t = bottom[1]->data();
  double loss = 0;
  int64_t valid = 0;
  for (int64_t i = 0; i < bottom[0]->count(); ++i) {
    if (Ignored(t[i])) continue;
    const double v = x[i];
    const double positive = v >= 0 ? 1.0 : 0.0;
    loss -= v * (t[i] - positive) - std::log1p(std::exp(v - 2 * v * positive));
    ++valid;
  }
  top[0]->mutable_data()[0] =
      static_cast<float>(loss / LossNormalizer(normalization_, outer_, inner_, valid, where()));
}

void SigmoidCrossEntropyLossLayer::Backward_cpu(const Tensors& top,
                                                const std::vector<bool>& propagate_down,
                                                const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError, "cannot backpropagate to the target input");
  if (!propagate_down[0]) return;
  const int64_t n = bottom[0]->count();
  const float* x = bottom[0]->data();
  const float* t = bottom[1]->data();
  float* dx = bottom[0]->mutable_diff();
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) valid += Ignored(t[i]) ? 0 : 1;
  const double scale =
      top[0]->diff()[0] / LossNormalizer(normalization_, outer_, inner_, valid, where());
  for (int64_t i = 0; i < n; ++i) {
    if (Ignored(t[i])) {
      dx[i] = 0;
      continue;
    }
    const double sigmoid = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    dx[i] = static_cast<float>((sigmoid - t[i]) * scale);
  }
}

}  // namespace caffeonspark
