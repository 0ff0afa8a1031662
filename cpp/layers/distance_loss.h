// Distance losses (loss layers: one scalar top, default loss_weight 1).
//   EuclideanLoss:   sum((a - b)^2) / (2N), N = shape(0); gradients to both inputs.
//   ContrastiveLoss: bottoms a (N,C,...), b, similar y (N): sum[y d^2 + (1-y) max(margin-d,0)^2]
//                    / (2N), d = |a-b|; legacy_version uses max(margin - d^2, 0) instead.
//                    The similarity input takes no gradient.
// Tests: tests/layers/test_distance_loss.py.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class LossLayerBase : public Layer {
 public:
  using Layer::Layer;
  int ExactNumTopBlobs() const override { return 1; }
  bool AutoTopBlobs() const override { return true; }
  void Reshape(const Tensors& bottom, const Tensors& top) override { top[0]->Reshape({}); }

 protected:
  float DefaultLossWeight(int top_index) const override { return top_index == 0 ? 1.0f : 0.0f; }
};

class EuclideanLossLayer : public LossLayerBase {
 public:
  using LossLayerBase::LossLayerBase;
  const char* type() const override { return "EuclideanLoss"; }
  int ExactNumBottomBlobs() const override { return 2; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  Tensor difference_;
};

class ContrastiveLossLayer : public LossLayerBase {
 public:
  using LossLayerBase::LossLayerBase;
  const char* type() const override { return "ContrastiveLoss"; }
  int ExactNumBottomBlobs() const override { return 3; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index != 2; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  Tensor difference_;              // a - b
  std::vector<double> distance_sq_;  // per pair
};

}  // namespace caffeonspark
