// Element-wise activations: one bottom, one top of the same shape, in-place allowed.
//   ReLU    relu_param.negative_slope (0): y = max(x,0) + s*min(x,0); in place the gradient
//           reads the sign of y, exact for s >= 0 (as in Caffe)
//   Sigmoid y = 1/(1+e^-x), dy/dx = y(1-y) (read from the top, so in-place is exact)
//   TanH    y = tanh(x), dy/dx = 1-y^2
//   AbsVal  y = |x|, dy/dx = sign(x) (0 at 0)
//   BNLL    y = log(1+e^x), computed as max(x,0) + log(1+e^-|x|); dy/dx = sigmoid(x)
//   ELU     elu_param.alpha (1): y = x (x>0), alpha(e^x-1) (x<=0); dy/dx = 1 or alpha e^x
//   Dropout dropout_param.dropout_ratio p (0.5), 0 <= p < 1. TRAIN (the layer's own phase,
//           set by the net): mask ~ Bernoulli(1-p) from the engine RNG (cpp/core/rng.h),
//           y = x*mask/(1-p), kept for backward; TEST: identity.
// Power/Exp/Log/PReLU live in neuron_extra.{h,cc}.
// Layers whose gradient needs x keep a copy of it when run in place (NeuronLayer::Input).
// Tests: tests/layers/test_neuron.py.
#pragma once

#include <cstdint>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class NeuronLayer : public Layer {
 public:
  using Layer::Layer;
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override { top[0]->ReshapeLike(*bottom[0]); }

 protected:
  // Call at the start of Forward_cpu in layers whose backward reads x: when the layer runs
  // in place (top data overwrites x) a copy of x is kept for Input().
  void SaveInputIfInPlace(const Tensors& bottom, const Tensors& top);
  // The forward input x, valid in Backward_cpu after SaveInputIfInPlace ran in Forward_cpu.
  const float* Input(const Tensors& bottom) const;

 private:
  Tensor saved_input_;
  bool in_place_ = false;
};

// Declares a neuron layer class with the given type string and no extra state.
#define COS_SIMPLE_NEURON(ClassName, TypeString)                                        \
  class ClassName : public NeuronLayer {                                                \
   public:                                                                              \
    using NeuronLayer::NeuronLayer;                                                     \
    const char* type() const override { return TypeString; }                            \
                                                                                        \
   protected:                                                                           \
    void Forward_cpu(const Tensors& bottom, const Tensors& top) override;               \
    void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,      \
                      const Tensors& bottom) override;                                  \
  }

COS_SIMPLE_NEURON(ReLULayer, "ReLU");
COS_SIMPLE_NEURON(SigmoidLayer, "Sigmoid");
COS_SIMPLE_NEURON(TanHLayer, "TanH");
COS_SIMPLE_NEURON(AbsValLayer, "AbsVal");
COS_SIMPLE_NEURON(BNLLLayer, "BNLL");
COS_SIMPLE_NEURON(ELULayer, "ELU");

class DropoutLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Dropout"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float ratio_ = 0.5f;
  float scale_ = 2.0f;
  std::vector<unsigned> mask_;
};

}  // namespace caffeonspark
