// ArgMax (argmax_param): the top_k (1) largest values of each item, as indices (as floats)
// or, with out_max_val (false), values.
//   axis set:   along that axis for every other position; top.shape = bottom.shape with
//               shape[axis] = top_k; holds indices, or the values when out_max_val.
//   axis unset: over count(1) per item n (the item flattened); top has max(num_axes, 3)
//               axes, all 1 except (N, 1, top_k), or (N, 2, top_k) when out_max_val: row 0
//               holds the indices, row 1 the values.
// Order: larger value first; equal values put the larger index first (Caffe's ordering of
// (value, index) pairs). top_k must not exceed the length searched. No gradient: a backward
// that asks for dx raises ConfigError, as Caffe refuses it.
// Tests: tests/layers/test_argmax.py.
#pragma once

#include <utility>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class ArgMaxLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ArgMax"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool out_max_val_ = false;
  bool has_axis_ = false;
  int top_k_ = 1;
  int64_t dim_ = 0, stride_ = 1, num_ = 0;  // length searched, its stride, searches
  std::vector<std::pair<float, int>> scratch_;  // one search (dim_ pairs), single-threaded
};

}  // namespace caffeonspark
