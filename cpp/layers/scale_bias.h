// Bias and Scale: broadcast a per-slice operand b (or s) over bottom[0]. The operand comes
// from bottom[1] when there are two bottoms, else it is a learned blob of shape
// bottom[0].shape[axis : axis + num_axes] (num_axes -1: all remaining axes; 0: a scalar).
// With outer = count(0, axis), dim = operand count, inner = count(axis + operand axes):
//   Bias:  y[o, d, i] = x[o, d, i] + b[d]
//   Scale: y[o, d, i] = x[o, d, i] * s[d] (+ bias[d] when scale_param.bias_term)
// Defaults: axis 1, num_axes 1; Bias filler constant 0; Scale filler constant 1 when none is
// written, bias_filler constant 0. In place allowed (Scale keeps a copy of x for its s
// gradient). Semantics: docs/CAFFE.md. Tests: tests/layers/test_scale_bias.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

// Shared shape rule of Bias and Scale.
class AxisBroadcastLayer : public Layer {
 public:
  using Layer::Layer;
  int MinBottomBlobs() const override { return 1; }
  int MaxBottomBlobs() const override { return 2; }
  int ExactNumTopBlobs() const override { return 1; }

 protected:
  // Shape of a learned operand for bottom[0] under (axis, num_axes).
  std::vector<int> LearnedShape(const Tensor& x, int axis, int num_axes) const;
  // Checks that `operand` lines up with x from `axis` on and sets outer_, dim_, inner_.
  void Resolve(const Tensor& x, const Tensor& operand, int axis);

  // y[o, d, i] = x * a[d] + c[d]; a or c may be null (1 and 0). A non-null keep gets a copy
  // of x in the same pass (y may be x).
  void Broadcast(const float* x, const float* a, const float* c, float* y,
                 float* keep = nullptr) const;

  // What one backward pass over dy writes; a null pointer is skipped.
  struct BackwardTargets {
    float* dx = nullptr;         // dx = dy * s[d] (s null: 1); may be dy
    const float* s = nullptr;
    float* sum_dy = nullptr;     // sum_dy[d] (+)= sum over o, i of dy
    bool accumulate_dy = false;
    float* sum_dy_x = nullptr;   // sum_dy_x[d] (+)= sum over o, i of dy * x (needs x)
    const float* x = nullptr;
    bool accumulate_dy_x = false;
  };
  // Sums in double, added in an order fixed by the shape (same on any thread count).
  void BackwardPass(const float* dy, const BackwardTargets& targets) const;

  int64_t outer_ = 0, dim_ = 0, inner_ = 0;
};

class BiasLayer : public AxisBroadcastLayer {
 public:
  using AxisBroadcastLayer::AxisBroadcastLayer;
  const char* type() const override { return "Bias"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

class ScaleLayer : public AxisBroadcastLayer {
 public:
  using AxisBroadcastLayer::AxisBroadcastLayer;
  const char* type() const override { return "Scale"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool bias_term_ = false;
  int bias_index_ = -1;  // index of the bias in blobs_ when bias_term
  bool in_place_ = false;
  Tensor saved_input_;  // x kept for the s gradient when running in place
};

}  // namespace caffeonspark
