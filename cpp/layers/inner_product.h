// InnerProduct: y = x W^T + b over the axes from `axis` on (M = count(0, axis) rows,
// K = count(axis) inputs). Weight (N, K), or (K, N) with transpose; bias (N) if bias_term.
// Defaults: axis 1, bias_term true, transpose false. Tests: tests/layers/test_inner_product.py.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class InnerProductLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "InnerProduct"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int M_ = 0, K_ = 0, N_ = 0;
  bool bias_term_ = true, transpose_ = false;
  Tensor bias_multiplier_;
};

}  // namespace caffeonspark
