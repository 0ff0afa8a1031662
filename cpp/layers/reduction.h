// Reduction (reduction_param): reduce all axes from `axis` (0) on, per leading index i,
// then multiply by coeff (1). Top shape = bottom.shape[:axis] (a scalar for axis 0).
//   SUM (default) y_i = coeff sum_j x_ij          dx = coeff dy_i
//   ASUM          y_i = coeff sum_j |x_ij|        dx = coeff sign(x_ij) dy_i (sign(0) = 0)
//   SUMSQ         y_i = coeff sum_j x_ij^2        dx = 2 coeff x_ij dy_i
//   MEAN          y_i = coeff sum_j x_ij / D      dx = coeff dy_i / D     (D = count(axis))
// Tests: tests/layers/test_reduction.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class ReductionLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Reduction"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  enum class Op { kSum, kAsum, kSumSq, kMean };
  Op op_ = Op::kSum;
  int axis_ = 0;
  float coeff_ = 1.0f;  // for MEAN, coeff / D (set in Reshape)
  int64_t num_ = 0, dim_ = 0;
};

}  // namespace caffeonspark
