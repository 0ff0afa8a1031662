// Tile and Crop (shape rules in tile_crop.h). Tests: tests/layers/test_tile_crop.py.
#include "layers/tile_crop.h"

#include <algorithm>

#include "core/checked_size.h"
#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

// ---- Tile ------------------------------------------------------------------------------

void TileLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("tile_param");
  COS_LAYER_CHECK(p.size("tiles"), ConfigError, "tile_param.tiles is required");
  tiles_ = p.integer("tiles");
  COS_LAYER_CHECK(tiles_ > 0, ConfigError, "tile_param.tiles must be positive, got ", tiles_);
  const Tensor& x = *bottom[0];
  const int axis = p.integer("axis");
  const int n = x.num_axes();
  COS_LAYER_CHECK(axis >= -n && axis < n, ShapeError, "tile_param.axis ", axis,
                  " is out of range for input ", x.shape_string());
  const int a = x.CanonicalAxis(axis);
  std::vector<int> shape = x.shape();
  shape[a] = static_cast<int>(CheckedMul<ShapeError>(shape[a], tiles_, where(), "tiled axis"));
  CheckedCount<ShapeError>(shape, where(), "tiled output count");
  top[0]->Reshape(shape);
  outer_ = x.count(0, a);
  inner_ = x.count(a);
}

void TileLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const int64_t inner = inner_, tiles = tiles_;
  ParallelFor(outer_ * tiles, outer_ * tiles * inner_, [&](int64_t row) {
    std::copy_n(x + (row / tiles) * inner, inner, y + row * inner);
  });
}

void TileLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const int64_t inner = inner_, tiles = tiles_;
  ParallelFor(outer_, outer_ * tiles * inner_, [&](int64_t o) {
    float* out = dx + o * inner;
    const float* in = dy + o * tiles * inner;
    std::copy_n(in, inner, out);
    for (int64_t t = 1; t < tiles; ++t) {
      for (int64_t i = 0; i < inner; ++i) out[i] += in[t * inner + i];
    }
  });
}

// ---- Crop ------------------------------------------------------------------------------

void CropLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("crop_param");
  const Tensor& big = *bottom[0];
  const Tensor& ref = *bottom[1];
  const int n = big.num_axes();
  COS_LAYER_CHECK(n == ref.num_axes(), ShapeError, "bottom[0] ", big.shape_string(), " and bottom[1] ",
                  ref.shape_string(), " must have the same number of axes");
  const int axis = p.integer("axis");
  COS_LAYER_CHECK(axis >= -n && axis < n, ShapeError, "crop_param.axis ", axis,
                  " is out of range for input ", big.shape_string());
  const int start = big.CanonicalAxis(axis);
  const std::vector<int> given = p.integers("offset");
  const int cropped = n - start;
  COS_LAYER_CHECK(given.size() <= 1 || static_cast<int>(given.size()) == cropped, ConfigError,
                  "crop_param.offset has ", given.size(), " values; give none, one, or one per "
                  "cropped axis (", cropped, " axes from axis ", start, ")");
  offsets_.assign(n, 0);
  small_shape_ = big.shape();
  for (int i = start; i < n; ++i) {
    const int offset = given.empty() ? 0 : given.size() == 1 ? given[0] : given[i - start];
    COS_LAYER_CHECK(offset >= 0, ConfigError, "crop_param.offset must be >= 0, got ", offset);
    COS_LAYER_CHECK(static_cast<int64_t>(offset) + ref.shape(i) <= big.shape(i), ShapeError,
                    "cannot crop axis ", i, " of ", big.shape_string(), " to size ", ref.shape(i),
                    " at offset ", offset, " (bottom[1] is ", ref.shape_string(), ")");
    offsets_[i] = offset;
    small_shape_[i] = ref.shape(i);
  }
  top[0]->Reshape(small_shape_);
  big_shape_ = big.shape();
  big_strides_.assign(n, 1);
  small_strides_.assign(n, 1);
  for (int i = n - 2; i >= 0; --i) {
    big_strides_[i] = big_strides_[i + 1] * big_shape_[i + 1];
    small_strides_[i] = small_strides_[i + 1] * small_shape_[i + 1];
  }
  rows_ = n == 0 ? 1 : top[0]->count() / std::max(small_shape_[n - 1], 1);
  if (n > 0 && small_shape_[n - 1] == 0) rows_ = 0;
}

void CropLayer::CopyWindow(const float* from, float* to, bool to_small) const {
  const int n = static_cast<int>(small_shape_.size());
  const int64_t run = n == 0 ? 1 : small_shape_[n - 1];
  const int64_t last_offset = n == 0 ? 0 : offsets_[n - 1];
  ParallelFor(rows_, rows_ * run, [&](int64_t row) {
    // Row index -> position in the small tensor's leading n - 1 axes -> offsets in both.
    int64_t rest = row, small_at = 0, big_at = last_offset;
    for (int i = n - 2; i >= 0; --i) {
      const int64_t idx = rest % small_shape_[i];
      rest /= small_shape_[i];
      small_at += idx * small_strides_[i];
      big_at += (idx + offsets_[i]) * big_strides_[i];
    }
    if (to_small) {
      std::copy_n(from + big_at, run, to + small_at);
    } else {
      std::copy_n(from + small_at, run, to + big_at);
    }
  });
}

void CropLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  CopyWindow(bottom[0]->data(), top[0]->mutable_data(), true);
}

void CropLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (propagate_down[0]) {
    float* dx = bottom[0]->mutable_diff();
    fill(bottom[0]->count(), 0.0f, dx);
    CopyWindow(top[0]->diff(), dx, false);
  }
  if (propagate_down[1]) fill(bottom[1]->count(), 0.0f, bottom[1]->mutable_diff());
}

}  // namespace caffeonspark
