// ArgMax (shape rule and ordering in argmax.h). Tests: tests/layers/test_argmax.py.
#include "layers/argmax.h"

#include <algorithm>
#include <functional>

namespace caffeonspark {

void ArgMaxLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("argmax_param");
  const Tensor& x = *bottom[0];
  out_max_val_ = p.flag("out_max_val");
  top_k_ = p.integer("top_k");
  has_axis_ = p.size("axis") > 0;
  COS_LAYER_CHECK(top_k_ >= 1, ConfigError, "argmax_param.top_k must be at least 1, got ", top_k_);
  const int n = x.num_axes();
  COS_LAYER_CHECK(n >= 1, ShapeError, "needs an input with at least one axis, got ",
                  x.shape_string());
  std::vector<int> shape;
  if (has_axis_) {
    const int axis = p.integer("axis");
    COS_LAYER_CHECK(axis >= -n && axis < n, ShapeError, "argmax_param.axis ", axis,
                    " is out of range for input ", x.shape_string());
    const int a = x.CanonicalAxis(axis);
    dim_ = x.shape(a);
    stride_ = x.count(a + 1);
    shape = x.shape();
    shape[a] = top_k_;
  } else {
    dim_ = x.count(1);
    stride_ = 1;
    shape.assign(std::max(n, 3), 1);
    shape[0] = x.shape(0);
    shape[1] = out_max_val_ ? 2 : 1;
    shape[2] = top_k_;
  }
  COS_LAYER_CHECK(top_k_ <= dim_, ConfigError, "argmax_param.top_k ", top_k_,
                  " exceeds the ", dim_, " values searched in input ", x.shape_string());
  num_ = dim_ == 0 ? 0 : x.count() / dim_;
  scratch_.resize(dim_);
  top[0]->Reshape(shape);
}

void ArgMaxLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const int64_t dim = dim_, stride = stride_, k = top_k_;
  for (int64_t i = 0; i < num_; ++i) {
    // Search i covers x[(outer * dim + j) * stride + inner], j < dim.
    const int64_t outer = i / stride, inner = i % stride;
    for (int64_t j = 0; j < dim; ++j) {
      scratch_[j] = {x[(outer * dim + j) * stride + inner], static_cast<int>(j)};
    }
    std::partial_sort(scratch_.begin(), scratch_.begin() + k, scratch_.end(),
                      std::greater<std::pair<float, int>>());
    for (int64_t j = 0; j < k; ++j) {
      const auto& [value, index] = scratch_[j];
      if (has_axis_) {
        y[(outer * k + j) * stride + inner] = out_max_val_ ? value : static_cast<float>(index);
      } else if (out_max_val_) {
        y[2 * i * k + j] = static_cast<float>(index);
        y[2 * i * k + k + j] = value;
      } else {
        y[i * k + j] = static_cast<float>(index);
      }
    }
  }
}

void ArgMaxLayer::Backward_cpu(const Tensors&, const std::vector<bool>& propagate_down,
                               const Tensors&) {
  COS_LAYER_CHECK(!propagate_down[0], ConfigError,
                  "ArgMax has no gradient but a backward pass asked for one; give the layer "
                  "propagate_down: false and leave force_backward off (it overrides propagate_down)");
}

}  // namespace caffeonspark
