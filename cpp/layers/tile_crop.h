// Tile and Crop: layers that copy a block of their input to a new shape.
//   Tile  tile_param axis (1), tiles (required, >= 1): top.shape[axis] = tiles * shape[axis];
//         with outer = count(0, axis), inner = count(axis), each outer slice of length inner
//         is written `tiles` times in a row. dx = sum of dy over the copies.
//   Crop  crop_param axis (2), offset (repeated): two bottoms; axes before `axis` are kept,
//         from `axis` on top.shape[i] = bottom[1].shape[i] and the window starts at offset:
//         none -> 0 everywhere, one value -> that value on every cropped axis, else one per
//         cropped axis. bottom[0].shape[i] >= offset + bottom[1].shape[i] is required.
//         dx = dy inside the window, 0 outside; bottom[1] only gives the shape (its gradient
//         is 0). Both bottoms need the same number of axes.
// Tests: tests/layers/test_tile_crop.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class TileLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Tile"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int tiles_ = 1;
  int64_t outer_ = 0, inner_ = 0;
};

class CropLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Crop"; }
  int ExactNumBottomBlobs() const override { return 2; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Copies every innermost run of the window between the big (bottom[0]-shaped) and the
  // small (top-shaped) buffer, in the direction `to_small`.
  void CopyWindow(const float* from, float* to, bool to_small) const;

  std::vector<int> offsets_;      // one per axis of bottom[0] (0 before `axis`)
  std::vector<int> big_shape_, small_shape_;
  std::vector<int64_t> big_strides_, small_strides_;
  int64_t rows_ = 0;  // number of innermost runs in the window
};

}  // namespace caffeonspark
