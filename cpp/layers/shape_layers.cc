// Flatten, Reshape, Split, Silence (rules in shape_layers.h).
// Tests: tests/layers/test_shape_layers.py.
#include "layers/shape_layers.h"

#include "core/math.h"

namespace caffeonspark {

namespace {

// Points `top` at the bottom's buffers; `top` must already have the bottom's count.
void ShareBoth(Tensor* top, const Tensor& bottom) {
  top->ShareData(bottom);
  top->ShareDiff(bottom);
}

}  // namespace

// ---- Flatten ---------------------------------------------------------------------------

void FlattenLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(top[0] != bottom[0], ConfigError, "does not work in place (give the top its own name)");
}

void FlattenLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("flatten_param");
  const Tensor& input = *bottom[0];
  const int start = input.CanonicalAxis(p.integer("axis"));
  const int end = input.CanonicalAxis(p.integer("end_axis"));
  COS_LAYER_CHECK(start <= end, ConfigError, "flatten_param axis ", start, " comes after end_axis ",
                  end, " for the input ", input.shape_string());
  std::vector<int> shape(input.shape().begin(), input.shape().begin() + start);
  shape.push_back(static_cast<int>(input.count(start, end + 1)));
  shape.insert(shape.end(), input.shape().begin() + end + 1, input.shape().end());
  top[0]->Reshape(shape);
  ShareBoth(top[0], input);
}

// ---- Reshape ---------------------------------------------------------------------------

void ReshapeLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(top[0] != bottom[0], ConfigError, "does not work in place (give the top its own name)");
  const Params& p = spec_.params.child("reshape_param");
  dims_.clear();
  inferred_ = -1;
  if (p.size("shape")) {
    for (int d : p.child("shape").integers("dim")) dims_.push_back(d);
  }
  for (size_t i = 0; i < dims_.size(); ++i) {
    COS_LAYER_CHECK(dims_[i] >= -1, ConfigError, "reshape_param.shape dim ", i, " is ", dims_[i],
                    "; dims are positive, 0 (copy) or -1 (infer)");
    if (dims_[i] != -1) continue;
    COS_LAYER_CHECK(inferred_ < 0, ConfigError, "reshape_param.shape has more than one -1 dim");
    inferred_ = static_cast<int>(i);
  }
}

void ReshapeLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("reshape_param");
  const Tensor& input = *bottom[0];
  const int axes = input.num_axes();
  const int axis = p.integer("axis");
  const int num_axes = p.integer("num_axes");
  const int start = axis >= 0 ? axis : axes + axis + 1;
  COS_LAYER_CHECK(start >= 0 && start <= axes, ShapeError, "reshape_param.axis ", axis,
                  " out of range for the input ", input.shape_string());
  COS_LAYER_CHECK(num_axes >= -1, ConfigError, "reshape_param.num_axes must be >= 0, or -1 for all, got ",
                  num_axes);
  const int end = num_axes == -1 ? axes : start + num_axes;
  COS_LAYER_CHECK(end <= axes, ShapeError, "reshape_param axis ", axis, " with num_axes ", num_axes,
                  " reaches past the last axis of the input ", input.shape_string());

  std::vector<int> shape(input.shape().begin(), input.shape().begin() + start);
  int64_t known = input.count(0, start) * input.count(end);
  for (size_t i = 0; i < dims_.size(); ++i) {
    int64_t d = dims_[i];
    if (d == 0) {
      const int source = start + static_cast<int>(i);
      COS_LAYER_CHECK(source < axes, ShapeError, "reshape_param.shape dim ", i,
                      " is 0 but the input ", input.shape_string(), " has no axis ", source, " to copy");
      d = input.shape(source);
    }
    if (d != -1) known *= d;
    shape.push_back(static_cast<int>(d));
  }
  shape.insert(shape.end(), input.shape().begin() + end, input.shape().end());
  if (inferred_ >= 0) {
    COS_LAYER_CHECK(known > 0 && input.count() % known == 0, ShapeError, "the input ",
                    input.shape_string(), " of ", input.count(), " elements cannot be reshaped with the",
                    " given dims (product ", known, " without the -1 dim)");
    shape[start + inferred_] = static_cast<int>(input.count() / known);
  }
  top[0]->Reshape(shape);
  COS_LAYER_CHECK(top[0]->count() == input.count(), ShapeError, "output shape ", top[0]->shape_string(),
                  " has ", top[0]->count(), " elements but the input ", input.shape_string(), " has ",
                  input.count());
  ShareBoth(top[0], input);
}

// ---- Split -----------------------------------------------------------------------------

void SplitLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  for (const Tensor* t : top) {
    COS_LAYER_CHECK(t != bottom[0], ConfigError, "does not work in place (give the tops their own names)");
  }
}

void SplitLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  for (Tensor* t : top) {
    t->ReshapeLike(*bottom[0]);
    t->ShareData(*bottom[0]);
  }
}

void SplitLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const int64_t n = bottom[0]->count();
  float* dx = bottom[0]->mutable_diff();
  copy(n, top[0]->diff(), dx);
  for (size_t i = 1; i < top.size(); ++i) axpy(n, 1.0f, top[i]->diff(), dx);
}

// ---- Silence ---------------------------------------------------------------------------

void SilenceLayer::Backward_cpu(const Tensors&, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  for (size_t i = 0; i < bottom.size(); ++i) {
    if (propagate_down[i]) fill(bottom[i]->count(), 0.0f, bottom[i]->mutable_diff());
  }
}

}  // namespace caffeonspark
