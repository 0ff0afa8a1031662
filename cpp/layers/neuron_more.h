// Three more element-wise layers (one bottom, one top of the same shape, in place allowed):
//   Threshold threshold_param.threshold t (0): y = x > t ? 1 : 0 (strict). No gradient:
//             a backward that asks for dx raises ConfigError, as Caffe refuses it.
//   Clip      clip_param min, max (both required): y = max(min, min(x, max));
//             dx = dy where min <= x <= max (both ends inclusive, Caffe's rule), else 0.
//   Swish     swish_param.beta b (1): y = x sigmoid(b x);
//             dx = dy (b y + sigmoid(b x) (1 - b y)).
// Clip and Swish read x in backward and keep a copy of it when run in place.
// Tests: tests/layers/test_neuron_more.py.
#pragma once

#include "layers/neuron.h"

namespace caffeonspark {

class ThresholdLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Threshold"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float threshold_ = 0;
};

class ClipLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Clip"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float min_ = 0, max_ = 0;
};

class SwishLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Swish"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float beta_ = 1;
};

}  // namespace caffeonspark
