// Layers that move no numbers: their tops alias the bottom's memory, or they have no top.
//   Flatten (flatten_param: axis 1, end_axis -1): axes [axis, end_axis] merged into one;
//     shares data and diff with the bottom. Not in place.
//   Reshape (reshape_param: shape {dim...} (none = no dims), axis 0, num_axes -1): the dims
//     replace bottom axes [axis, axis+num_axes) (num_axes -1 = to the end; a negative axis
//     counts from num_axes+1, so -1 means "after the last axis"). A dim 0 copies the bottom
//     dim at that position; one dim -1 is inferred from the count. Shares data and diff.
//     Not in place.
//   Split: 1 bottom, >= 1 tops, each top shares the bottom's data; backward sums the top
//     diffs into the bottom diff. Not in place. Inserted by the net for fan-out (docs/CAFFE.md §2.4).
//   Silence: >= 1 bottoms, no tops; forward does nothing, backward writes zeros into the
//     diffs of the bottoms that need them.
// Sharing is redone in every Reshape: a bottom reshape that grows capacity reallocates.
// Tests: tests/layers/test_shape_layers.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class FlattenLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Flatten"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors&, const Tensors&) override {}
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}
};

class ReshapeLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Reshape"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors&, const Tensors&) override {}
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}

 private:
  std::vector<int64_t> dims_;  // reshape_param.shape.dim
  int inferred_ = -1;          // index of the -1 dim, if any
};

class SplitLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Split"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int MinTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors&, const Tensors&) override {}
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

class SilenceLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Silence"; }
  int MinBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 0; }
  void Reshape(const Tensors&, const Tensors&) override {}

 protected:
  void Forward_cpu(const Tensors&, const Tensors&) override {}
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

}  // namespace caffeonspark
