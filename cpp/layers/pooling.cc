#include "layers/pooling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/math.h"

namespace caffeonspark {

namespace {

// Optional scalar fields without a proto default arrive either absent or filled with 0;
// in both cases 0 means "not given" (a zero kernel or stride is invalid anyway).
int Given(const Params& p, const char* field) {
  return p.size(field) ? p.integer(field) : 0;
}

// Work below this many bottom elements stays on one thread.
constexpr long kParallelMin = 32768;

}  // namespace

int PoolingLayer::MaxTopBlobs() const {
  const Params& p = spec_.params.child("pooling_param");
  return p.size("pool") && p.str("pool") != "MAX" ? 1 : 2;
}

void PoolingLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("pooling_param");
  const std::string pool = p.size("pool") ? p.str("pool") : "MAX";
  COS_LAYER_CHECK(pool != "STOCHASTIC", ConfigError,
                  "STOCHASTIC pooling runs only on the GPU in Caffe and is not implemented "
                  "here; use MAX or AVE");
  COS_LAYER_CHECK(pool == "MAX" || pool == "AVE", ConfigError, "unknown pooling method '", pool, "'");
  method_ = pool == "MAX" ? Method::kMax : Method::kAve;
  global_ = p.size("global_pooling") && p.flag("global_pooling");
  const std::string round = p.size("round_mode") ? p.str("round_mode") : "CEIL";
  COS_LAYER_CHECK(round == "CEIL" || round == "FLOOR", ConfigError, "unknown round_mode '", round, "'");
  ceil_mode_ = round == "CEIL";

  const int kernel_size = Given(p, "kernel_size");
  const int kernel_h = Given(p, "kernel_h"), kernel_w = Given(p, "kernel_w");
  const bool kernel_hw = kernel_h != 0 || kernel_w != 0;
  if (global_) {
    COS_LAYER_CHECK(kernel_size == 0 && !kernel_hw, ConfigError,
                    "global_pooling takes the whole plane: do not give a kernel size");
  } else {
    COS_LAYER_CHECK((kernel_size != 0) != kernel_hw, ConfigError,
                    "give kernel_size or kernel_h and kernel_w (one of the two)");
    COS_LAYER_CHECK(!kernel_hw || (kernel_h != 0 && kernel_w != 0), ConfigError,
                    "non-square kernels need both kernel_h and kernel_w");
    kernel_[0] = kernel_hw ? kernel_h : kernel_size;
    kernel_[1] = kernel_hw ? kernel_w : kernel_size;
    COS_LAYER_CHECK(kernel_[0] > 0 && kernel_[1] > 0, ConfigError, "kernel size must be positive");
  }
  const int pad_h = Given(p, "pad_h"), pad_w = Given(p, "pad_w");
  const int pad = Given(p, "pad");
  const bool pad_hw = pad_h != 0 || pad_w != 0;
  pad_[0] = pad_hw ? pad_h : pad;
  pad_[1] = pad_hw ? pad_w : pad;
  const int stride_h = Given(p, "stride_h"), stride_w = Given(p, "stride_w");
  const int stride = p.size("stride") ? p.integer("stride") : 1;
  const bool stride_hw = stride_h != 0 || stride_w != 0;
  COS_LAYER_CHECK(!stride_hw || (stride_h != 0 && stride_w != 0), ConfigError,
                  "stride_h and stride_w must be given together");
  stride_[0] = stride_hw ? stride_h : stride;
  stride_[1] = stride_hw ? stride_w : stride;
  COS_LAYER_CHECK(stride_[0] > 0 && stride_[1] > 0, ConfigError, "stride must be positive");
  COS_LAYER_CHECK(pad_[0] >= 0 && pad_[1] >= 0, ConfigError, "pad must not be negative");
  if (global_) {
    COS_LAYER_CHECK(pad_[0] == 0 && pad_[1] == 0 && stride_[0] == 1 && stride_[1] == 1,
                    ConfigError, "global_pooling needs pad 0 and stride 1");
  } else {
    COS_LAYER_CHECK(pad_[0] < kernel_[0] && pad_[1] < kernel_[1], ConfigError, "pad (", pad_[0],
                    ", ", pad_[1], ") must be smaller than the kernel (", kernel_[0], ", ",
                    kernel_[1], ")");
  }
}

void PoolingLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() == 4, ShapeError, "bottom must have 4 axes (N, C, H, W), got ",
                  x.shape_string());
  num_ = x.shape(0);
  channels_ = x.shape(1);
  height_ = x.shape(2);
  width_ = x.shape(3);
  if (global_) {
    kernel_[0] = height_;
    kernel_[1] = width_;
  }
  const int in[2] = {height_, width_};
  int out[2];
  for (int a = 0; a < 2; ++a) {
    const double steps = static_cast<double>(in[a] + 2 * pad_[a] - kernel_[a]) / stride_[a];
    out[a] = static_cast<int>(ceil_mode_ ? std::ceil(steps) : std::floor(steps)) + 1;
  }
  if (pad_[0] != 0 || pad_[1] != 0) {
    for (int a = 0; a < 2; ++a) {
      if ((out[a] - 1) * stride_[a] >= in[a] + pad_[a]) --out[a];
    }
  }
  COS_LAYER_CHECK(out[0] > 0 && out[1] > 0, ShapeError, "the kernel (", kernel_[0], "x", kernel_[1],
                  ") does not fit the padded input ", x.shape_string(), " (pad ", pad_[0], ", ",
                  pad_[1], ")");
  pooled_h_ = out[0];
  pooled_w_ = out[1];
  for (Tensor* t : top) t->Reshape({num_, channels_, pooled_h_, pooled_w_});
  if (method_ == Method::kMax) argmax_.resize(top[0]->count());
}

PoolingLayer::Window PoolingLayer::Span(int out_index, int axis) const {
  const int start = out_index * stride_[axis] - pad_[axis];
  const int limit = (axis == 0 ? height_ : width_) + pad_[axis];
  return {start, std::min(start + kernel_[axis], limit)};
}

void PoolingLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  float* mask_top = top.size() > 1 ? top[1]->mutable_data() : nullptr;
  const long planes = static_cast<long>(num_) * channels_;
  const long in_plane = static_cast<long>(height_) * width_;
  const long out_plane = static_cast<long>(pooled_h_) * pooled_w_;
  const bool is_max = method_ == Method::kMax;
  int* argmax = is_max ? argmax_.data() : nullptr;
#pragma omp parallel for if (planes * in_plane > kParallelMin)
  for (long plane = 0; plane < planes; ++plane) {
    const float* src = x + plane * in_plane;
    for (int ph = 0; ph < pooled_h_; ++ph) {
      const Window wh = Span(ph, 0);
      const int h0 = std::max(wh.start, 0), h1 = std::min(wh.end, height_);
      for (int pw = 0; pw < pooled_w_; ++pw) {
        const Window ww = Span(pw, 1);
        const int w0 = std::max(ww.start, 0), w1 = std::min(ww.end, width_);
        const long at = plane * out_plane + ph * pooled_w_ + pw;
        if (is_max) {
          float best = -FLT_MAX;
          int best_index = -1;
          for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) {
              const float v = src[h * width_ + w];
              const bool better = v > best;  // strict: the first maximum wins
              best = better ? v : best;
              best_index = better ? h * width_ + w : best_index;
            }
          }
          y[at] = best;
          argmax[at] = best_index;
          if (mask_top) mask_top[at] = static_cast<float>(best_index);
        } else {
          const int divisor = (wh.end - wh.start) * (ww.end - ww.start);
          float sum = 0;
          for (int h = h0; h < h1; ++h) {
            for (int w = w0; w < w1; ++w) sum += src[h * width_ + w];
          }
          y[at] = sum / divisor;
        }
      }
    }
  }
}

void PoolingLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const long planes = static_cast<long>(num_) * channels_;
  const long in_plane = static_cast<long>(height_) * width_;
  const long out_plane = static_cast<long>(pooled_h_) * pooled_w_;
  const bool is_max = method_ == Method::kMax;
  const int* argmax = is_max ? argmax_.data() : nullptr;
#pragma omp parallel for if (planes * in_plane > kParallelMin)
  for (long plane = 0; plane < planes; ++plane) {
    float* dst = dx + plane * in_plane;
    std::fill(dst, dst + in_plane, 0.0f);
    const float* grad = dy + plane * out_plane;
    for (int ph = 0; ph < pooled_h_; ++ph) {
      const Window wh = Span(ph, 0);
      const int h0 = std::max(wh.start, 0), h1 = std::min(wh.end, height_);
      for (int pw = 0; pw < pooled_w_; ++pw) {
        const long at = ph * pooled_w_ + pw;
        if (is_max) {
          const int index = argmax[plane * out_plane + at];
          if (index >= 0) dst[index] += grad[at];
          continue;
        }
        const Window ww = Span(pw, 1);
        const int w0 = std::max(ww.start, 0), w1 = std::min(ww.end, width_);
        const float share = grad[at] / ((wh.end - wh.start) * (ww.end - ww.start));
        for (int h = h0; h < h1; ++h) {
          for (int w = w0; w < w1; ++w) dst[h * width_ + w] += share;
        }
      }
    }
  }
}

}  // namespace caffeonspark
