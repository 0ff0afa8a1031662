// Filter and BatchReindex (rules in filter_reindex.h).
#include "layers/filter_reindex.h"

#include <algorithm>
#include <cmath>

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

// ---- Filter ----------------------------------------------------------------------------

void FilterLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(top.size() + 1 == bottom.size(), ConfigError,
                  "needs one top per filtered bottom (", bottom.size() - 1,
                  " bottoms before the selector), got ", top.size(), " tops");
  first_reshape_ = true;
}

void FilterLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& selector = *bottom.back();
  COS_LAYER_CHECK(selector.num_axes() >= 1, ShapeError,
                  "the selector (last bottom) needs an item axis, got ", selector.shape_string());
  for (int a = 1; a < selector.num_axes(); ++a) {
    COS_LAYER_CHECK(selector.shape(a) == 1, ShapeError,
                    "the selector (last bottom) must be (N, 1, ...), got ", selector.shape_string());
  }
  const int items = selector.shape(0);
  for (size_t i = 0; i + 1 < bottom.size(); ++i) {
    COS_LAYER_CHECK(bottom[i]->num_axes() >= 1 && bottom[i]->shape(0) == items, ShapeError,
                    "bottom ", i, " ", bottom[i]->shape_string(), " must have the selector's ",
                    items, " items on axis 0");
  }
  kept_.clear();
  const float* s = selector.data();
  for (int n = 0; n < items; ++n) {
    if (s[n] != 0.0f) kept_.push_back(n);
  }
  const int rows = first_reshape_ ? items : static_cast<int>(kept_.size());
  first_reshape_ = false;
  for (size_t i = 0; i < top.size(); ++i) {
    std::vector<int> shape = bottom[i]->shape();
    shape[0] = rows;
    top[i]->Reshape(shape);
  }
}

void FilterLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const int64_t rows = static_cast<int64_t>(kept_.size());
  for (size_t i = 0; i < top.size(); ++i) {
    const int64_t dim = bottom[i]->count(1);
    const float* x = bottom[i]->data();
    float* y = top[i]->mutable_data();
    ParallelFor(rows, rows * dim, [&](int64_t r) {
      std::copy(x + kept_[r] * dim, x + (kept_[r] + 1) * dim, y + r * dim);
    });
  }
}

void FilterLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                               const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down.back(), ConfigError,
                  "cannot backpropagate to the selector (last bottom)");
  for (size_t i = 0; i < top.size(); ++i) {
    if (!propagate_down[i]) continue;
    const int64_t dim = bottom[i]->count(1);
    float* dx = bottom[i]->mutable_diff();
    fill(bottom[i]->count(), 0.0f, dx);
    const float* dy = top[i]->diff();
    const int64_t rows = static_cast<int64_t>(kept_.size());
    ParallelFor(rows, rows * dim, [&](int64_t r) {
      std::copy(dy + r * dim, dy + (r + 1) * dim, dx + kept_[r] * dim);
    });
  }
}

// ---- BatchReindex ------------------------------------------------------------------------

void BatchReindexLayer::ReadIndices(const Tensor& indices, int items) {
  std::vector<int>& out = index_;
  const float* r = indices.data();
  for (int64_t m = 0; m < indices.count(); ++m) {
    COS_LAYER_CHECK(std::isfinite(r[m]) && r[m] >= 0 && r[m] < items, ShapeError, "index ", r[m],
                    " at position ", m, " lies outside [0, ", items, ") (bottom 0 has ", items,
                    " items)");
    out[m] = static_cast<int>(r[m]);
  }
}

void BatchReindexLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(bottom[1]->num_axes() == 1, ShapeError,
                  "the index input (bottom 1) must be 1-D, got ", bottom[1]->shape_string());
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 1, ShapeError, "bottom 0 needs an item axis");
  std::vector<int> shape = bottom[0]->shape();
  shape[0] = bottom[1]->shape(0);
  top[0]->Reshape(shape);
  index_.resize(bottom[1]->count());
}

void BatchReindexLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  ReadIndices(*bottom[1], bottom[0]->shape(0));
  const std::vector<int>& index = index_;
  const int64_t rows = static_cast<int64_t>(index.size()), dim = bottom[0]->count(1);
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ParallelFor(rows, rows * dim, [&](int64_t m) {
    std::copy(x + index[m] * dim, x + (index[m] + 1) * dim, y + m * dim);
  });
}

void BatchReindexLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                     const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError,
                  "cannot backpropagate to the index input (bottom 1)");
  if (!propagate_down[0]) return;
  ReadIndices(*bottom[1], bottom[0]->shape(0));
  const std::vector<int>& index = index_;
  const int64_t dim = bottom[0]->count(1);
  float* dx = bottom[0]->mutable_diff();
  fill(bottom[0]->count(), 0.0f, dx);
  const float* dy = top[0]->diff();
  // Several rows may land on one item: summed in row order, one thread per column block.
  ParallelFor(dim, static_cast<int64_t>(index.size()) * dim, [&](int64_t j) {
    for (size_t m = 0; m < index.size(); ++m) dx[index[m] * dim + j] += dy[m * dim + j];
  });
}

}  // namespace caffeonspark
