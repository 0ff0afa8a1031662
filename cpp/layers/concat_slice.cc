// Concat and Slice (rules in concat_slice.h). Tests: tests/layers/test_concat_slice.py.
#include "layers/concat_slice.h"

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

void CopyBlocks(int64_t rows, int64_t block, const float* src, int64_t src_stride, float* dst,
                int64_t dst_stride) {
  ParallelFor(rows, rows * block,
              [&](int64_t r) { copy(block, src + r * src_stride, dst + r * dst_stride); });
}

namespace {

// Whether `<field>_set` (sent by python/caffeonspark/engine.py) says the field was written;
// without the flag, a value different from the proto default 1 counts as written.
bool Written(const Params& p, const std::string& field) {
  const std::string flag = field + "_set";
  return p.size(flag) ? p.flag(flag) : p.integer(field) != 1;
}

// The axis from `axis` or the legacy `<legacy>` field (>= 0, no negative form).
int ChooseAxis(const Params& p, const std::string& legacy, bool use_legacy, const Tensor& blob,
               const std::string& where) {
  if (!use_legacy) return blob.CanonicalAxis(p.integer("axis"));
  const int axis = p.integer(legacy);
  COS_CHECK(axis >= 0 && axis < blob.num_axes(), ShapeError, where, legacy, " ", axis,
            " out of range for the input ", blob.shape_string());
  return axis;
}

}  // namespace

// ---- Concat ----------------------------------------------------------------------------

void ConcatLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("concat_param");
  legacy_dim_ = Written(p, "concat_dim");
  COS_LAYER_CHECK(!(legacy_dim_ && Written(p, "axis")), ConfigError,
                  "give either concat_param.axis or the legacy concat_dim, not both");
}

void ConcatLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("concat_param");
  const Tensor& first = *bottom[0];
  axis_ = ChooseAxis(p, "concat_dim", legacy_dim_, first, where());
  std::vector<int> shape = first.shape();
  for (size_t b = 1; b < bottom.size(); ++b) {
    const Tensor& other = *bottom[b];
    bool same = other.num_axes() == first.num_axes();
    for (int a = 0; same && a < first.num_axes(); ++a) {
      same = a == axis_ || other.shape(a) == first.shape(a);
    }
    COS_LAYER_CHECK(same, ShapeError, "bottom ", b, " has shape ", other.shape_string(),
                    " but bottom 0 has ", first.shape_string(),
                    "; all dimensions except the concat axis ", axis_, " must agree");
    shape[axis_] += other.shape(axis_);
  }
  outer_ = first.count(0, axis_);
  inner_ = first.count(axis_ + 1);
  top[0]->Reshape(shape);
  if (bottom.size() == 1) {
    top[0]->ShareData(first);
    top[0]->ShareDiff(first);
  }
}

void ConcatLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  if (bottom.size() == 1) return;
  const int64_t top_stride = top[0]->shape(axis_) * inner_;
  float* y = top[0]->mutable_data();
  int64_t offset = 0;
  for (const Tensor* b : bottom) {
    const int64_t block = b->shape(axis_) * inner_;
    CopyBlocks(outer_, block, b->data(), block, y + offset, top_stride);
    offset += block;
  }
}

void ConcatLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                               const Tensors& bottom) {
  if (bottom.size() == 1) return;
  const int64_t top_stride = top[0]->shape(axis_) * inner_;
  const float* dy = top[0]->diff();
  int64_t offset = 0;
  for (size_t i = 0; i < bottom.size(); ++i) {
    const int64_t block = bottom[i]->shape(axis_) * inner_;
    if (propagate_down[i]) CopyBlocks(outer_, block, dy + offset, top_stride, bottom[i]->mutable_diff(), block);
    offset += block;
  }
}

// ---- Slice -----------------------------------------------------------------------------

void SliceLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("slice_param");
  legacy_dim_ = Written(p, "slice_dim");
  COS_LAYER_CHECK(!(legacy_dim_ && Written(p, "axis")), ConfigError,
                  "give either slice_param.axis or the legacy slice_dim, not both");
  slice_points_ = p.integers("slice_point");
  COS_LAYER_CHECK(slice_points_.empty() || slice_points_.size() + 1 == top.size(), ConfigError,
                  slice_points_.size(), " slice_point values need ", slice_points_.size() + 1,
                  " tops, got ", top.size());
}

void SliceLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("slice_param");
  const Tensor& input = *bottom[0];
  axis_ = ChooseAxis(p, "slice_dim", legacy_dim_, input, where());
  const int dim = input.shape(axis_);
  std::vector<int> sizes;
  if (slice_points_.empty()) {
    const int tops = static_cast<int>(top.size());
    COS_LAYER_CHECK(dim % tops == 0, ShapeError, top.size(), " tops do not divide axis ", axis_,
                    " of size ", dim, " of the input ", input.shape_string(), " evenly");
    sizes.assign(top.size(), dim / tops);
  } else {
    int previous = 0;
    for (int point : slice_points_) {
      COS_LAYER_CHECK(point > previous && point < dim, ConfigError,
                      "slice_point values must increase strictly inside (0, ", dim,
                      ") for axis ", axis_, " of ", input.shape_string(), ", got ", point,
                      " after ", previous);
      sizes.push_back(point - previous);
      previous = point;
    }
    sizes.push_back(dim - previous);
  }
  outer_ = input.count(0, axis_);
  inner_ = input.count(axis_ + 1);
  std::vector<int> shape = input.shape();
  for (size_t t = 0; t < top.size(); ++t) {
    shape[axis_] = sizes[t];
    top[t]->Reshape(shape);
  }
  if (top.size() == 1) {
    top[0]->ShareData(input);
    top[0]->ShareDiff(input);
  }
}

void SliceLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  if (top.size() == 1) return;
  const int64_t stride = bottom[0]->shape(axis_) * inner_;
  const float* x = bottom[0]->data();
  int64_t offset = 0;
  for (Tensor* t : top) {
    const int64_t block = t->shape(axis_) * inner_;
    CopyBlocks(outer_, block, x + offset, stride, t->mutable_data(), block);
    offset += block;
  }
}

void SliceLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  if (!propagate_down[0] || top.size() == 1) return;
  const int64_t stride = bottom[0]->shape(axis_) * inner_;
  float* dx = bottom[0]->mutable_diff();
  int64_t offset = 0;
  for (const Tensor* t : top) {
    const int64_t block = t->shape(axis_) * inner_;
    CopyBlocks(outer_, block, t->diff(), block, dx + offset, stride);
    offset += block;
  }
}

}  // namespace caffeonspark
