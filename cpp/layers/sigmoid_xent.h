// SigmoidCrossEntropyLoss: bottoms scores x and targets t of the same count (t in [0, 1]);
// one scalar top (loss weight 1 by default).
//   loss = −Σ_{i not ignored} [x_i·(t_i − 1{x_i ≥ 0}) − log(1 + exp(x_i − 2·x_i·1{x_i ≥ 0}))]
//          / norm
// (the cross entropy of sigmoid(x) against t, in a form that never overflows). A position is
// ignored when loss_param.ignore_label is set and (int) t_i equals it. norm by
// loss_param.normalization (loss_normalization.h; outer = shape(0), inner = count / outer),
// defaulting to BATCH_SIZE here (not VALID) when neither normalization nor normalize is
// written. Gradient dx = (sigmoid(x) − t)·loss_weight / norm, 0 at ignored positions; the
// targets take none (asking is a ConfigError). x and t need the same count and shape(0).
// Tests: tests/layers/test_sigmoid_xent.py (NumPy, FD, the real-Caffe probe).
#pragma once

#include <string>
#include <vector>

#include "layers/distance_loss.h"

namespace caffeonspark {

class SigmoidCrossEntropyLossLayer : public LossLayerBase {
 public:
  using LossLayerBase::LossLayerBase;
  const char* type() const override { return "SigmoidCrossEntropyLoss"; }
  int ExactNumBottomBlobs() const override { return 2; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index == 0; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool Ignored(float target) const {
    return has_ignore_label_ && static_cast<int>(target) == ignore_label_;
  }

  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  std::string normalization_;
  int64_t outer_ = 0, inner_ = 0;
};

}  // namespace caffeonspark
