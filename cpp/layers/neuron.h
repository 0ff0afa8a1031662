// Element-wise activations: one bottom, one top of the same shape, in-place allowed.
// ReLU (negative_slope 0): y = max(x,0) + s*min(x,0). Tests: tests/layers/test_neuron.py.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class NeuronLayer : public Layer {
 public:
  using Layer::Layer;
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override { top[0]->ReshapeLike(*bottom[0]); }
};

class ReLULayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "ReLU"; }

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

}  // namespace caffeonspark
