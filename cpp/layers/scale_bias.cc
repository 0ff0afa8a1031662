#include "layers/scale_bias.h"

#include <memory>

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/lane_sums.h"
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

namespace {

// Row loops with plain arguments, so the scalars stay in registers and the loops vectorise.
// out may be in (in place); keep never aliases either.
void BroadcastRow(const float* in, int64_t n, float mul, float add, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = in[i] * mul + add;
}

void BroadcastKeepRow(const float* in, int64_t n, float mul, float add, float* out,
                      float* __restrict keep) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = in[i];
    keep[i] = v;
    out[i] = v * mul + add;
  }
}

void Store(double sum, bool accumulate, float* out) {
  *out = static_cast<float>(accumulate ? *out + sum : sum);
}

}  // namespace

void AxisBroadcastLayer::Broadcast(const float* x, const float* a, const float* c, float* y,
                                   float* keep) const {
  const int64_t dim = dim_, inner = inner_;
  ParallelFor(outer_ * dim_, outer_ * dim_ * inner_, [&](int64_t row) {
    const int64_t d = row % dim;
    const float mul = a ? a[d] : 1.0f;
    const float add = c ? c[d] : 0.0f;
    if (keep) {
      BroadcastKeepRow(x + row * inner, inner, mul, add, y + row * inner, keep + row * inner);
    } else {
      BroadcastRow(x + row * inner, inner, mul, add, y + row * inner);
    }
  });
}

void AxisBroadcastLayer::BackwardPass(const float* dy, const BackwardTargets& t) const {
  const int64_t outer = outer_, dim = dim_, inner = inner_;
  // Each slice d on one thread: its sums, row by row, then the row's dx while it is in cache.
  ParallelFor(dim_, 2 * outer_ * dim_ * inner_, [&](int64_t d) {
    LaneSum sum_dy, sum_dy_x;
    const float mul = t.s ? t.s[d] : 1.0f;
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t base = (o * dim + d) * inner;
      if (t.sum_dy_x) {
        AddRowAndProduct(dy + base, t.x + base, inner, sum_dy, sum_dy_x);
      } else if (t.sum_dy) {
        AddRow(dy + base, inner, sum_dy);
      }
      if (t.dx) BroadcastRow(dy + base, inner, mul, 0.0f, t.dx + base);
    }
    if (t.sum_dy) Store(sum_dy.Total(), t.accumulate_dy, t.sum_dy + d);
    if (t.sum_dy_x) Store(sum_dy_x.Total(), t.accumulate_dy_x, t.sum_dy_x + d);
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
  BackwardTargets t;
  // dx = dy: nothing to write in place.
  if (propagate_down[0] && bottom[0] != top[0]) t.dx = bottom[0]->mutable_diff();
  if (bottom.size() > 1) {
    if (propagate_down[1]) t.sum_dy = bottom[1]->mutable_diff();
  } else if (param_propagate_down(0)) {
    t.sum_dy = blobs_[0]->mutable_diff();
    t.accumulate_dy = true;
  }
  if (t.dx || t.sum_dy) BackwardPass(top[0]->diff(), t);
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
  float* keep = nullptr;
  if (in_place_) {
    saved_input_.ReshapeLike(*bottom[0]);
    keep = saved_input_.mutable_data();  // x for the s gradient, copied in the same pass
  }
  const float* s = bottom.size() > 1 ? bottom[1]->data() : blobs_[0]->data();
  const float* c = bias_term_ ? blobs_[bias_index_]->data() : nullptr;
  Broadcast(bottom[0]->data(), s, c, top[0]->mutable_data(), keep);
}

void ScaleLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  const bool two = bottom.size() > 1;
  BackwardTargets t;
  if (bias_term_ && param_propagate_down(bias_index_)) {
    t.sum_dy = blobs_[bias_index_]->mutable_diff();
    t.accumulate_dy = true;
  }
  // The s gradient reads dy and x; each row's sums come before its dx, which may alias dy.
  if (two ? propagate_down[1] : param_propagate_down(0)) {
    t.x = in_place_ ? saved_input_.data() : bottom[0]->data();
    t.sum_dy_x = two ? bottom[1]->mutable_diff() : blobs_[0]->mutable_diff();
    t.accumulate_dy_x = !two;
  }
  if (propagate_down[0]) {
    t.s = two ? bottom[1]->data() : blobs_[0]->data();
    t.dx = bottom[0]->mutable_diff();
  }
  if (t.dx || t.sum_dy || t.sum_dy_x) BackwardPass(top[0]->diff(), t);
}

}  // namespace caffeonspark
