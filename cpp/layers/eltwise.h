// Eltwise (eltwise_param: operation SUM, coeff [], stable_prod_grad true): >= 2 bottoms of one
// shape (ShapeError naming both otherwise), 1 top of that shape.
//   SUM:  y = sum_i c_i x_i, c_i from `coeff` (one per bottom, default all 1); dx_i = c_i dy.
//   PROD: y = prod_i x_i (coeff not allowed); dx_i = dy * prod_{j!=i} x_j when
//         stable_prod_grad, else dy * y / x_i (Caffe's cheaper form, inf/NaN at x_i = 0).
//   MAX:  y = max_i x_i; between bottoms 0 and 1 a tie goes to bottom 1, a later bottom wins
//         only when strictly greater. The winner's index is kept; dx_i = dy where i won, else 0.
// Not in place (ConfigError): the top would overwrite bottom 0 before it is read.
// Tests: tests/layers/test_eltwise.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class EltwiseLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Eltwise"; }
  int MinBottomBlobs() const override { return 2; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  enum class Op { kProd, kSum, kMax };
  Op op_ = Op::kSum;
  std::vector<float> coeffs_;
  bool stable_prod_grad_ = true;
  std::vector<int> argmax_;  // MAX: the winning bottom per element
  // SUM: each bottom's data, taken before the parallel loop (getting a buffer may allocate
  // it); sized in Reshape.
  std::vector<const float*> inputs_;
};

}  // namespace caffeonspark
