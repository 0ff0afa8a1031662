// Filter and BatchReindex: select or reorder items along axis 0 (no parameters).
//
// "Filter": bottoms x_0 .. x_{k-1}, then a selector s (N, 1, 1, ...) last; tops y_0 .. y_{k-1}.
// Item n of every x_i is kept when s[n] != 0, in order: y_i = x_i[{n : s[n] != 0}], shape
// (kept, x_i.shape[1:]). Every x_i needs N items; the selector's axes after the first are 1.
// At set-up the tops get all N items (the selector's values are not known yet); each Forward
// reshapes them to the kept count. Backward: dx_i[n] = dy_i[row of n] for kept items, 0 for
// the others; the selector takes no gradient (asking for one is a ConfigError).
// "BatchReindex": bottoms x (N, ...) and a 1-D index list r (M); y[m] = x[r[m]], shape
// (M, x.shape[1:]). Indices must lie in [0, N) (ShapeError otherwise). Backward accumulates:
// dx[n] = Σ_{m : r[m] = n} dy[m]; the index input takes no gradient.
// Tests: tests/layers/test_filter_reindex.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class FilterLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Filter"; }
  int MinBottomBlobs() const override { return 2; }
  int MinTopBlobs() const override { return 1; }
  bool AllowForceBackward(int bottom_index) const override {
    return bottom_index + 1 < static_cast<int>(spec_.bottoms.size());
  }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  std::vector<int> kept_;  // items with a non-zero selector, ascending
  bool first_reshape_ = true;
};

class BatchReindexLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "BatchReindex"; }
  int ExactNumBottomBlobs() const override { return 2; }
  int ExactNumTopBlobs() const override { return 1; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index == 0; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Checks r against [0, items) and stores it in index_ (sized in Reshape).
  void ReadIndices(const Tensor& indices, int items);
  std::vector<int> index_;
};

}  // namespace caffeonspark
