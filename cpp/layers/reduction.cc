// Reduction (formulas and defaults in reduction.h). Tests: tests/layers/test_reduction.py.
#include "layers/reduction.h"

#include <cmath>

#include "core/parallel.h"

namespace caffeonspark {

void ReductionLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("reduction_param");
  const std::string& op = p.str("operation");
  if (op == "SUM") {
    op_ = Op::kSum;
  } else if (op == "ASUM") {
    op_ = Op::kAsum;
  } else if (op == "SUMSQ") {
    op_ = Op::kSumSq;
  } else if (op == "MEAN") {
    op_ = Op::kMean;
  } else {
    COS_LAYER_CHECK(false, ConfigError, "unknown reduction_param.operation '", op,
                    "' (expected SUM, ASUM, SUMSQ or MEAN)");
  }
}

void ReductionLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  const int axis = spec_.params.child("reduction_param").integer("axis");
  const int n = x.num_axes();
  COS_LAYER_CHECK(axis >= -n && axis < n, ShapeError, "reduction_param.axis ", axis,
                  " is out of range for input ", x.shape_string());
  axis_ = x.CanonicalAxis(axis);
  top[0]->Reshape(std::vector<int>(x.shape().begin(), x.shape().begin() + axis_));
  num_ = x.count(0, axis_);
  dim_ = x.count(axis_);
  coeff_ = spec_.params.child("reduction_param").real("coeff");
  if (op_ == Op::kMean && dim_ > 0) coeff_ /= static_cast<float>(dim_);
}

void ReductionLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const int64_t dim = dim_;
  const Op op = op_;
  const float coeff = coeff_;
  ParallelFor(num_, num_ * dim_, [&](int64_t i) {
    const float* row = x + i * dim;
    double sum = 0.0;
    switch (op) {
      case Op::kSum:
      case Op::kMean:
        for (int64_t j = 0; j < dim; ++j) sum += row[j];
        break;
      case Op::kAsum:
        for (int64_t j = 0; j < dim; ++j) sum += std::fabs(row[j]);
        break;
      case Op::kSumSq:
        for (int64_t j = 0; j < dim; ++j) sum += static_cast<double>(row[j]) * row[j];
        break;
    }
    y[i] = static_cast<float>(sum) * coeff;
  });
}

void ReductionLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                  const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = bottom[0]->data();
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const int64_t dim = dim_;
  const Op op = op_;
  const float coeff = coeff_;
  ParallelFor(num_, num_ * dim_, [&](int64_t i) {
    const float g = dy[i] * coeff;
    const float* in = x + i * dim;
    float* out = dx + i * dim;
    switch (op) {
      case Op::kSum:
      case Op::kMean:
        for (int64_t j = 0; j < dim; ++j) out[j] = g;
        break;
      case Op::kAsum:
        for (int64_t j = 0; j < dim; ++j) out[j] = g * static_cast<float>((in[j] > 0) - (in[j] < 0));
        break;
      case Op::kSumSq:
        for (int64_t j = 0; j < dim; ++j) out[j] = 2.0f * g * in[j];
        break;
    }
  });
}

}  // namespace caffeonspark
