#include "layers/scale_bias.h"

#include <memory>

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

// ---- shared shape rule -----------------------------------------------------------------

std::vector<int> AxisBroadcastLayer::LearnedShape(const Tensor& x, int axis, int num_axes) const {
  COS_LAYER_CHECK(num_axes >= -1, ConfigError, "num_axes must be -1 (all remaining axes) or >= 0, got ",
                  num_axes);
  const int start = x.CanonicalAxis(axis);
  const int end = num_axes == -1 ? x.num_axes() : start + num_axes;
  COS_LAYER_CHECK(end <= x.num_axes(), ShapeError, "axis ", start, " + num_axes ", num_axes,
                  " runs past the ", x.num_axes(), " axes of input ", x.shape_string());
  std::vector<int> shape(x.shape().begin() + start, x.shape().begin() + end);
  CheckedCount(shape, where(), "learned operand count");
  return shape;
}

void AxisBroadcastLayer::Resolve(const Tensor& x, const Tensor& operand, int axis) {
  // A scalar operand applies from axis 0 whatever `axis` says (Caffe's rule).
  const int start = operand.num_axes() == 0 ? 0 : x.CanonicalAxis(axis);
  COS_LAYER_CHECK(start + operand.num_axes() <= x.num_axes(), ShapeError, "operand ",
                  operand.shape_string(), " from axis ", start, " does not fit input ",
                  x.shape_string());
  for (int i = 0; i < operand.num_axes(); ++i) {
    COS_LAYER_CHECK(x.shape(start + i) == operand.shape(i), ShapeError, "operand ",
                    operand.shape_string(), " does not match input ", x.shape_string(),
                    " from axis ", start, " (axis ", start + i, ": ", x.shape(start + i), " vs ",
                    operand.shape(i), ")");
  }
  outer_ = x.count(0, start);
  dim_ = operand.count();
  inner_ = x.count(start + operand.num_axes());
}

void AxisBroadcastLayer::Broadcast(const float* x, const float* a, const float* c, float* y) const {
  const int64_t dim = dim_, inner = inner_;
  ParallelFor(outer_ * dim_, outer_ * dim_ * inner_, [&](int64_t row) {
    const int64_t d = row % dim;
    const float mul = a ? a[d] : 1.0f;
    const float add = c ? c[d] : 0.0f;
    const float* in = x + row * inner;
    float* out = y + row * inner;
    for (int64_t i = 0; i < inner; ++i) out[i] = in[i] * mul + add;
  });
}

void AxisBroadcastLayer::Reduce(const float* dy, const float* x, bool accumulate, float* out) const {
  const int64_t outer = outer_, dim = dim_, inner = inner_;
  ParallelFor(dim_, outer_ * dim_ * inner_, [&](int64_t d) {
    double sum = 0.0;
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t base = (o * dim + d) * inner;
      if (x) {
        for (int64_t i = 0; i < inner; ++i) sum += static_cast<double>(dy[base + i]) * x[base + i];
      } else {
        for (int64_t i = 0; i < inner; ++i) sum += dy[base + i];
      }
    }
    out[d] = static_cast<float>(accumulate ? out[d] + sum : sum);
  });
}

// ---- Bias ------------------------------------------------------------------------------

void BiasLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  if (bottom.size() > 1) {
    blobs_.clear();
    return;
  }
  const Params& p = spec_.params.child("bias_param");
  auto bias = std::make_shared<Tensor>(LearnedShape(*bottom[0], p.integer("axis"), p.integer("num_axes")));
  Fill(p.child("filler"), bias.get(), where() + "filler: ");
  blobs_ = {bias};
}

void BiasLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& bias = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
  Resolve(*bottom[0], bias, spec_.params.child("bias_param").integer("axis"));
  top[0]->ReshapeLike(*bottom[0]);
}

void BiasLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* b = bottom.size() > 1 ? bottom[1]->data() : blobs_[0]->data();
  Broadcast(bottom[0]->data(), nullptr, b, top[0]->mutable_data());
}

void BiasLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  const float* dy = top[0]->diff();
  if (propagate_down[0] && bottom[0] != top[0]) {
    copy(bottom[0]->count(), dy, bottom[0]->mutable_diff());
  }
  if (bottom.size() > 1) {
    if (propagate_down[1]) Reduce(dy, nullptr, false, bottom[1]->mutable_diff());
  } else if (param_propagate_down(0)) {
    Reduce(dy, nullptr, true, blobs_[0]->mutable_diff());
  }
}

// ---- Scale -----------------------------------------------------------------------------

void ScaleLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("scale_param");
  bias_term_ = p.flag("bias_term");
  blobs_.clear();
  std::vector<int> shape;
  if (bottom.size() > 1) {
    shape = bottom[1]->shape();
  } else {
    shape = LearnedShape(*bottom[0], p.integer("axis"), p.integer("num_axes"));
    auto scale = std::make_shared<Tensor>(shape);
    const bool filler_set = p.size("filler_set") ? p.flag("filler_set") : false;
    if (filler_set) {
      Fill(p.child("filler"), scale.get(), where() + "filler: ");
    } else {
      fill(scale->count(), 1.0f, scale->mutable_data());
    }
    blobs_.push_back(scale);
  }
  bias_index_ = -1;
  if (bias_term_) {
    auto bias = std::make_shared<Tensor>(shape);
    Fill(p.child("bias_filler"), bias.get(), where() + "bias_filler: ");
    bias_index_ = static_cast<int>(blobs_.size());
    blobs_.push_back(bias);
  }
}

void ScaleLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& scale = bottom.size() > 1 ? *bottom[1] : *blobs_[0];
  Resolve(*bottom[0], scale, spec_.params.child("scale_param").integer("axis"));
  if (bias_term_) {
    COS_LAYER_CHECK(blobs_[bias_index_]->count() == dim_, ShapeError, "scale ",
                    scale.shape_string(), " no longer matches the bias ",
                    blobs_[bias_index_]->shape_string());
  }
  top[0]->ReshapeLike(*bottom[0]);
}

void ScaleLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  in_place_ = bottom[0] == top[0];
  if (in_place_) {
    saved_input_.ReshapeLike(*bottom[0]);
    copy(bottom[0]->count(), bottom[0]->data(), saved_input_.mutable_data());
  }
  const float* s = bottom.size() > 1 ? bottom[1]->data() : blobs_[0]->data();
  const float* c = bias_term_ ? blobs_[bias_index_]->data() : nullptr;
  Broadcast(bottom[0]->data(), s, c, top[0]->mutable_data());
}

void ScaleLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  const float* dy = top[0]->diff();
  const bool two = bottom.size() > 1;
  if (bias_term_ && param_propagate_down(bias_index_)) {
    Reduce(dy, nullptr, true, blobs_[bias_index_]->mutable_diff());
  }
  // The s gradient reads dy and x; it runs before bottom[0]'s diff, which may alias dy.
  const float* x = in_place_ ? saved_input_.data() : bottom[0]->data();
  if (two) {
    if (propagate_down[1]) Reduce(dy, x, false, bottom[1]->mutable_diff());
  } else if (param_propagate_down(0)) {
    Reduce(dy, x, true, blobs_[0]->mutable_diff());
  }
  if (propagate_down[0]) {
    const float* s = two ? bottom[1]->data() : blobs_[0]->data();
    Broadcast(dy, s, nullptr, bottom[0]->mutable_diff());
  }
}

}  // namespace caffeonspark
