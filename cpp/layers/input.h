// Input: tops with shapes from input_param.shape (one shape for every top, or one per top),
// filled by the caller (net.forward(**inputs), MemoryData feeding). No bottoms, no backward.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class InputLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Input"; }
  int ExactNumBottomBlobs() const override { return 0; }
  int MinTopBlobs() const override { return 1; }
  bool IsDataLayer() const override { return true; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors&, const Tensors&) override {}

 protected:
  void Forward_cpu(const Tensors&, const Tensors&) override {}
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}
};

}  // namespace caffeonspark
