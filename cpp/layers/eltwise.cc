// Eltwise SUM / PROD / MAX (rules in eltwise.h). Tests: tests/layers/test_eltwise.py.
#include "layers/eltwise.h"

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {
// Plain-argument loops (vectorised) for SUM's forward: y = c x, and y += c x.
void ScaledCopy(const float* x, int64_t n, float c, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = c * x[i];
}
void AddScaled(const float* x, int64_t n, float c, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += c * x[i];
}
}  // namespace

void EltwiseLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(top[0] != bottom[0], ConfigError, "does not work in place (give the top its own name)");
  const Params& p = spec_.params.child("eltwise_param");
  const std::string& op = p.str("operation");
  if (op == "SUM") {
    op_ = Op::kSum;
  } else if (op == "PROD") {
    op_ = Op::kProd;
  } else if (op == "MAX") {
    op_ = Op::kMax;
  } else {
    throw ConfigError(Msg(where(), "unknown eltwise_param.operation '", op, "'"));
  }
  coeffs_ = p.reals("coeff");
  COS_LAYER_CHECK(coeffs_.empty() || coeffs_.size() == bottom.size(), ConfigError,
                  "eltwise_param.coeff needs one value per bottom (", bottom.size(),
                  " bottoms, ", coeffs_.size(), " coeffs)");
  COS_LAYER_CHECK(coeffs_.empty() || op_ == Op::kSum, ConfigError,
                  "eltwise_param.coeff applies to SUM only, not ", op);
  if (coeffs_.empty()) coeffs_.assign(bottom.size(), 1.0f);
  stable_prod_grad_ = p.flag("stable_prod_grad");
}

void EltwiseLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  for (size_t i = 1; i < bottom.size(); ++i) {
    COS_LAYER_CHECK(bottom[i]->shape() == bottom[0]->shape(), ShapeError, "bottom ", i,
                    " has shape ", bottom[i]->shape_string(), " but bottom 0 has ",
                    bottom[0]->shape_string(), "; all bottoms must have the same shape");
  }
  top[0]->ReshapeLike(*bottom[0]);
  if (op_ == Op::kMax) argmax_.resize(static_cast<size_t>(bottom[0]->count()));
  inputs_.resize(bottom.size());
}

void EltwiseLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const int64_t n = top[0]->count();
  float* y = top[0]->mutable_data();
  switch (op_) {
    case Op::kSum:
      // One pass per range over all bottoms: y = ((0 + c0 x0) + c1 x1) + ...
      for (size_t i = 0; i < bottom.size(); ++i) inputs_[i] = bottom[i]->data();
      ParallelForRanges(n, [&](int64_t begin, int64_t end) {
        ScaledCopy(inputs_[0] + begin, end - begin, coeffs_[0], y + begin);
        for (size_t i = 1; i < inputs_.size(); ++i) {
          AddScaled(inputs_[i] + begin, end - begin, coeffs_[i], y + begin);
        }
      });
      break;
    case Op::kProd: {
      const float* a = bottom[0]->data();
      const float* b = bottom[1]->data();
      ParallelFor(n, [&](int64_t k) { y[k] = a[k] * b[k]; });
      for (size_t i = 2; i < bottom.size(); ++i) {
        const float* x = bottom[i]->data();
        ParallelFor(n, [&](int64_t k) { y[k] *= x[k]; });
      }
      break;
    }
    case Op::kMax: {
      int* winner = argmax_.data();
      const float* a = bottom[0]->data();
      const float* b = bottom[1]->data();
      ParallelFor(n, [&](int64_t k) {
        const bool first = a[k] > b[k];
        y[k] = first ? a[k] : b[k];
        winner[k] = first ? 0 : 1;
      });
      for (size_t i = 2; i < bottom.size(); ++i) {
        const float* x = bottom[i]->data();
        const int index = static_cast<int>(i);
        ParallelFor(n, [&](int64_t k) {
          if (x[k] > y[k]) {
            y[k] = x[k];
            winner[k] = index;
          }
        });
      }
      break;
    }
  }
}

void EltwiseLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  const int64_t n = top[0]->count();
  const float* dy = top[0]->diff();
  const float* y = top[0]->data();
  for (size_t i = 0; i < bottom.size(); ++i) {
    if (!propagate_down[i]) continue;
    float* dx = bottom[i]->mutable_diff();
    switch (op_) {
      case Op::kSum: {
        const float c = coeffs_[i];
        ParallelFor(n, [&](int64_t k) { dx[k] = c * dy[k]; });
        break;
      }
      case Op::kProd:
        if (stable_prod_grad_) {
          ParallelFor(n, [&](int64_t k) { dx[k] = dy[k]; });
          for (size_t j = 0; j < bottom.size(); ++j) {
            if (j == i) continue;
            const float* x = bottom[j]->data();
            ParallelFor(n, [&](int64_t k) { dx[k] *= x[k]; });
          }
        } else {
          const float* x = bottom[i]->data();
          ParallelFor(n, [&](int64_t k) { dx[k] = dy[k] * y[k] / x[k]; });
        }
        break;
      case Op::kMax: {
        const int* winner = argmax_.data();
        const int index = static_cast<int>(i);
        ParallelFor(n, [&](int64_t k) { dx[k] = winner[k] == index ? dy[k] : 0.0f; });
        break;
      }
    }
  }
}

}  // namespace caffeonspark
