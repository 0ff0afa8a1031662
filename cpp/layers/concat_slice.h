// Concat and Slice: join bottoms / cut one bottom along an axis.
//   Concat (concat_param: axis 1, negative counts from the end; legacy concat_dim, >= 0, used
//     when written; writing both is a ConfigError). >= 1 bottoms, 1 top. All dimensions but
//     the axis must agree (ShapeError naming both shapes); top dim = sum of the bottom dims.
//     One bottom: the top shares its data and diff.
//   Slice (slice_param: axis 1 or legacy slice_dim, as Concat; slice_point: tops-1 cut
//     points, strictly increasing inside (0, dim); none = an even split, dim divisible by the
//     number of tops). 1 bottom, >= 1 tops. One top: shares data and diff.
// Both are views in (outer, dim, inner) layout: outer = count(0, axis), inner = count(axis+1).
// Backward copies the diff pieces back (Concat) or gathers them (Slice).
// Tests: tests/layers/test_concat_slice.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class ConcatLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Concat"; }
  int MinBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int axis_ = 1;
  bool legacy_dim_ = false;
  int64_t outer_ = 0, inner_ = 0;
};

class SliceLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Slice"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int MinTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int axis_ = 1;
  bool legacy_dim_ = false;
  std::vector<int> slice_points_;
  int64_t outer_ = 0, inner_ = 0;
};

// Copies `rows` blocks of `block` floats from src (rows `src_stride` apart) to dst (rows
// `dst_stride` apart): the strided copy both layers are made of.
void CopyBlocks(int64_t rows, int64_t block, const float* src, int64_t src_stride, float* dst,
                int64_t dst_stride);

}  // namespace caffeonspark
