// Parameter: exposes one learned blob as its top (no bottoms, one top).
//
// "Parameter" (parameter_param { shape { dim: ... } }): blobs_[0] has that shape (a scalar when
// no shape is given) and starts at zero: Caffe runs no filler for it; a trained value comes from
// a .caffemodel or from the solver. Forward: y = w. Backward: dw += dy (the layer's parameter
// gradient accumulates, as every layer's does; Caffe shares the buffers instead, which gives
// the same dw for a single backward pass).
// Tests: tests/layers/test_parameter.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class ParameterLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Parameter"; }
  int ExactNumBottomBlobs() const override { return 0; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

}  // namespace caffeonspark
