// MVN (mvn_param): mean-variance normalisation of each row, where a row is one (n, c) plane
// (all axes after 1), or one item n (all axes after 0) when across_channels (false).
//   y = x - mean(x)                                   normalize_variance false
//   y = (x - mean(x)) / (sqrt(mean((x - mean)^2)) + eps)  normalize_variance true (default)
// eps (1e-9) is added to the standard deviation, not to the variance (Caffe's rule).
// Backward (Caffe's formula, exact up to the eps term), with D the row length:
//   dx = dy - sum(dy) / D                                            without variance
//   dx = (dy - sum(dy) / D - y sum(dy y) / D) / (std + eps)          with variance
// In place allowed (y is kept for backward). Semantics: docs/CAFFE.md §2.6.
// Tests: tests/layers/test_mvn.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class MVNLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "MVN"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool normalize_variance_ = true;
  bool across_channels_ = false;
  float eps_ = 1e-9f;
  int64_t rows_ = 0, dim_ = 0;
  std::vector<float> scale_;  // 1 / (std + eps) per row (1 without variance normalisation)
  Tensor normalized_;         // y, kept for backward when normalize_variance
};

}  // namespace caffeonspark
