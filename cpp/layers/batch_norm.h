// BatchNorm (batch_norm_param): normalise each channel c = shape(1) (1 for 1-D input) over
// N and every axis after 1, with no learned scale or shift (nets follow it with Scale).
//   batch statistics:  mu = mean(x), var = mean((x - mu)^2), y = (x - mu) / sqrt(var + eps)
//   global statistics: f = (s == 0 ? 0 : 1 / s), mu = f b0, var = f b1, the same y
// Blobs, zero at start and never learned (missing ParamSpecs are added with lr_mult 0, a
// non-zero lr_mult is a ConfigError): b0 mean sum (C), b1 variance sum (C), s scale (1).
// Each batch-statistics forward updates them, with a = moving_average_fraction (0.999) and
// m = count / C: s = a s + 1, b0 = a b0 + mu, b1 = a b1 + m / (m - 1) var (1 when m == 1).
// use_global_stats: unset -> false in TRAIN, true in TEST. eps: 1e-5.
// Backward, batch statistics: dx = (dy - mean(dy) - mean(dy y) y) / sqrt(var + eps);
// global statistics: dx = dy / sqrt(var + eps). In place allowed (y is kept for backward).
// Semantics: docs/CAFFE.md §2.6. Tests: tests/layers/test_batch_norm.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class BatchNormLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "BatchNorm"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Mean and variance of channel c of x over (n, spatial), into mean_[c] and var_[c].
  void ChannelStatistics(const float* x, int64_t c);
  void UpdateRunningSums();

  bool use_global_stats_ = false;
  float moving_average_fraction_ = 0.999f;
  float eps_ = 1e-5f;
  int channels_ = 0;
  int64_t num_ = 0, spatial_ = 0;
  std::vector<double> mean_, var_;  // statistics used by the last forward (C)
  std::vector<float> inv_std_;      // 1 / sqrt(var + eps) per channel
  Tensor normalized_;               // y, kept for backward (top may be overwritten in place)
};

}  // namespace caffeonspark
