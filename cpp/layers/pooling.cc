// Pooling (rules in pooling.h). Tests: tests/layers/test_pooling.py.
#include "layers/pooling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/checked_size.h"
#include "core/math.h"
#include "core/parallel.h"
#include "core/rng.h"

namespace caffeonspark {

namespace {

// Optional scalar fields without a proto default arrive either absent or filled with 0;
// in both cases 0 means "not given" (a zero kernel or stride is invalid anyway).
int Given(const Params& p, const char* field) {
  return p.size(field) ? p.integer(field) : 0;
}

// Interior output columns are processed kChunk at a time in vector registers (GCC/Clang vector
// extensions: one AVX-512 register, two AVX2 ones): every lane runs the scalar loop's exact
// sequence of compares or adds, so results are bitwise those of the per-window loop.
constexpr int kChunk = 16;
// Strides wider than this leave the vector chunks to the per-window loop: a chunk's lanes
// span kChunk strides, and the padded copy its last planes read (PlanTail) grows with that.
// Real nets pool with strides of 1 to 4.
constexpr int kMaxChunkStride = 256;

}  // namespace

int PoolingLayer::MaxTopBlobs() const {
  const Params& p = spec_.params.child("pooling_param");
  return p.size("pool") && p.str("pool") != "MAX" ? 1 : 2;
}

void PoolingLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("pooling_param");
  const std::string pool = p.size("pool") ? p.str("pool") : "MAX";
  COS_LAYER_CHECK(pool == "MAX" || pool == "AVE" || pool == "STOCHASTIC", ConfigError,
                  "unknown pooling method '", pool, "'");
  method_ = pool == "MAX" ? Method::kMax : pool == "AVE" ? Method::kAve : Method::kStochastic;
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
  COS_LAYER_CHECK(method_ != Method::kStochastic || (pad_[0] == 0 && pad_[1] == 0), ConfigError,
                  "padding is implemented only for MAX and AVE pooling, not STOCHASTIC");
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
  // Sizes in checked 64-bit arithmetic: a huge kernel, pad or stride is a ConfigError here,
  // never a wrapped int or an allocation that fails inside the parallel loop.
  const int64_t in[2] = {height_, width_};
  int64_t out[2];
  for (int a = 0; a < 2; ++a) {
    const int64_t span = in[a] + 2 * static_cast<int64_t>(pad_[a]) - kernel_[a];
    const double steps = static_cast<double>(span) / stride_[a];
    out[a] = static_cast<int64_t>(ceil_mode_ ? std::ceil(steps) : std::floor(steps)) + 1;
  }
  if (pad_[0] != 0 || pad_[1] != 0) {
    for (int a = 0; a < 2; ++a) {
      if ((out[a] - 1) * stride_[a] >= in[a] + pad_[a]) --out[a];
    }
  }
  COS_LAYER_CHECK(out[0] > 0 && out[1] > 0, ShapeError, "the kernel (", kernel_[0], "x", kernel_[1],
                  ") does not fit the padded input ", x.shape_string(), " (pad ", pad_[0], ", ",
                  pad_[1], ")");
  const std::string prefix = where();
  CheckedCount(std::vector<int64_t>{num_, channels_, out[0], out[1]}, prefix, "pooled top size");
  for (int a = 0; a < 2; ++a) {
    // Window coordinates (Span) stay in int: the last window's start plus the kernel.
    CheckedAdd(CheckedMul(out[a] - 1, stride_[a], prefix, "last pooling window start"),
               kernel_[a], prefix, "last pooling window end");
  }
  pooled_h_ = static_cast<int>(out[0]);
  pooled_w_ = static_cast<int>(out[1]);
  for (Tensor* t : top) t->Reshape({num_, channels_, pooled_h_, pooled_w_});
  if (method_ != Method::kAve) argmax_.resize(top[0]->count());
  if (method_ == Method::kStochastic) uniforms_.resize(top[0]->count());
  // Columns whose window lies inside [0, width): start >= 0 and start + kernel <= width.
  interior_lo_ = static_cast<int>(
      std::min<int64_t>((static_cast<int64_t>(pad_[1]) + stride_[1] - 1) / stride_[1], pooled_w_));
  const int64_t last = static_cast<int64_t>(width_) + pad_[1] - kernel_[1];
  interior_hi_ = last < 0 ? 0 : static_cast<int>(std::min<int64_t>(last / stride_[1] + 1, pooled_w_));
  interior_hi_ = std::max(interior_hi_, interior_lo_);
  // Vector lanes of a wide stride would read far past the plane: such rows (rare; only the
  // speed differs) take the per-window loop everywhere.
  if (stride_[1] > kMaxChunkStride || method_ == Method::kStochastic) interior_hi_ = interior_lo_;
  PlanTail();
}

// The chunks' spare lanes read up to `reach` floats past a plane's start: inside the tensor
// for most planes, past its end for the last few, which read a zero-padded copy instead. The
// copy is sized here and filled before the parallel loop, which then allocates nothing.
void PoolingLayer::PlanTail() {
  const int64_t planes = static_cast<int64_t>(num_) * channels_;
  const int64_t in_plane = static_cast<int64_t>(height_) * width_;
  tail_planes_ = 0;
  if (interior_hi_ == interior_lo_ || planes == 0 || in_plane == 0) {
    tail_.clear();
    return;
  }
  const int64_t reach = in_plane + (kChunk + 1) * static_cast<int64_t>(stride_[1]) + kernel_[1];
  tail_planes_ = std::min(planes, (reach - 1) / in_plane + 1);
  tail_.assign(CheckedAdd((tail_planes_ - 1) * in_plane, reach, where(), "pooling tail copy"),
               0.0f);
}

PoolingLayer::Window PoolingLayer::Span(int out_index, int axis) const {
  const int start = out_index * stride_[axis] - pad_[axis];
  const int limit = (axis == 0 ? height_ : width_) + pad_[axis];
  return {start, std::min(start + kernel_[axis], limit)};
}

namespace {

typedef float Floats __attribute__((vector_size(kChunk * sizeof(float))));
typedef int Ints __attribute__((vector_size(kChunk * sizeof(int))));
typedef float UnalignedFloats
    __attribute__((vector_size(kChunk * sizeof(float)), aligned(alignof(float)), may_alias));
typedef int UnalignedInts
    __attribute__((vector_size(kChunk * sizeof(int)), aligned(alignof(int)), may_alias));

inline Floats Load(const float* p) { return *reinterpret_cast<const UnalignedFloats*>(p); }

// x[j·step] for j < kChunk; reads x[0 .. kChunk·step) (one float more than used for step 2).
template <int kStep>
Floats Strided(const float* x, int step) {
  if constexpr (kStep == 1) {
    return Load(x);
  } else if constexpr (kStep == 2) {
    const Ints even = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
    return __builtin_shuffle(Load(x), Load(x + kChunk), even);
  } else {
    Floats v;
    for (int j = 0; j < kChunk; ++j) v[j] = x[j * step];
    return v;
  }
}

// One chunk of interior outputs of one row: window j starts at column first + j·step, rows
// [h0, h1), kernel_w columns. MAX: strict > in row-major order (the first maximum wins) with
// the winner's index h·width + w; AVE: the sum in row-major order divided by divisor.
// Stores the first `valid` lanes, or all kChunk when `room` (outputs left in the row) allows:
// the spare lanes then land on outputs computed later.
template <int kStep>
void MaxChunk(const float* src, int width, int h0, int h1, int kernel_w, int first, int step,
              int valid, int room, float* y, int* argmax) {
  Ints lane;
  for (int j = 0; j < kChunk; ++j) lane[j] = j * step;
  Floats best = Floats{} - FLT_MAX;
  Ints index = Ints{} - 1;
  for (int h = h0; h < h1; ++h) {
    for (int kw = 0; kw < kernel_w; ++kw) {
      const int offset = h * width + first + kw;
      const Floats v = Strided<kStep>(src + offset, step);
      const Ints better = v > best;
      best = better ? v : best;
      index = better ? lane + offset : index;
    }
  }
  if (room >= kChunk) {
    *reinterpret_cast<UnalignedFloats*>(y) = best;
    *reinterpret_cast<UnalignedInts*>(argmax) = index;
    return;
  }
  for (int j = 0; j < valid; ++j) {
    y[j] = best[j];
    argmax[j] = index[j];
  }
}

template <int kStep>
void AveChunk(const float* src, int width, int h0, int h1, int kernel_w, int first, int step,
              int valid, int room, int divisor, float* y) {
  Floats sum = {};
  for (int h = h0; h < h1; ++h) {
    for (int kw = 0; kw < kernel_w; ++kw) sum += Strided<kStep>(src + h * width + first + kw, step);
  }
  const Floats mean = sum / static_cast<float>(divisor);
  if (room >= kChunk) {
    *reinterpret_cast<UnalignedFloats*>(y) = mean;
    return;
  }
  for (int j = 0; j < valid; ++j) y[j] = mean[j];
}

}  // namespace

// Output row ph of one plane. Edge columns (window clipped by the image) run the per-window
// loop; the interior columns [interior_lo_, interior_hi_) run in chunks of kChunk lanes, whose
// spare lanes read up to kChunk·stride floats past the row: src must allow that (the caller
// hands a zero-padded copy for the last planes, see PlanTail).
void PoolingLayer::ForwardRow(const float* src, int ph, float* y, int* argmax) const {
  const Window wh = Span(ph, 0);
  const int h0 = std::max(wh.start, 0), h1 = std::min(wh.end, height_);
  const bool is_max = method_ == Method::kMax;
  auto window = [&](int pw) {
    const Window ww = Span(pw, 1);
    const int w0 = std::max(ww.start, 0), w1 = std::min(ww.end, width_);
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
      y[pw] = best;
      argmax[pw] = best_index;
    } else {
      const int divisor = (wh.end - wh.start) * (ww.end - ww.start);
      float sum = 0;
      for (int h = h0; h < h1; ++h) {
        for (int w = w0; w < w1; ++w) sum += src[h * width_ + w];
      }
      y[pw] = sum / divisor;
    }
  };
  const int lo = interior_lo_, hi = interior_hi_;
  const int sw = stride_[1], kw = kernel_[1];
  const int divisor = (wh.end - wh.start) * kw;  // interior: the full kernel width
  for (int c = lo; c < hi; c += kChunk) {
    const int valid = std::min(kChunk, hi - c), room = pooled_w_ - c, first = c * sw - pad_[1];
    if (is_max) {
      if (sw == 1) {
        MaxChunk<1>(src, width_, h0, h1, kw, first, sw, valid, room, y + c, argmax + c);
      } else if (sw == 2) {
        MaxChunk<2>(src, width_, h0, h1, kw, first, sw, valid, room, y + c, argmax + c);
      } else {
        MaxChunk<0>(src, width_, h0, h1, kw, first, sw, valid, room, y + c, argmax + c);
      }
    } else if (sw == 1) {
      AveChunk<1>(src, width_, h0, h1, kw, first, sw, valid, room, divisor, y + c);
    } else if (sw == 2) {
      AveChunk<2>(src, width_, h0, h1, kw, first, sw, valid, room, divisor, y + c);
    } else {
      AveChunk<0>(src, width_, h0, h1, kw, first, sw, valid, room, divisor, y + c);
    }
  }
  // The edge columns last: they overwrite what the chunks' spare lanes stored there.
  for (int pw = 0; pw < lo; ++pw) window(pw);
  for (int pw = hi; pw < pooled_w_; ++pw) window(pw);
}

// STOCHASTIC (rule in pooling.h): windows never reach into padding (there is none).
void PoolingLayer::ForwardStochastic(const float* x, float* y) {
  const long planes = static_cast<long>(num_) * channels_;
  const long in_plane = static_cast<long>(height_) * width_;
  const long out_plane = static_cast<long>(pooled_h_) * pooled_w_;
  const bool train = phase_ == Phase::kTrain;
  if (train) rng_uniform(static_cast<int64_t>(uniforms_.size()), 0.0f, 1.0f, uniforms_.data());
  ParallelFor(planes, planes * in_plane * kWindowedElementWork, [&](int64_t plane) {
    const float* src = x + plane * in_plane;
    for (int ph = 0; ph < pooled_h_; ++ph) {
      const Window wh = Span(ph, 0);
      const int h0 = wh.start, h1 = std::min(wh.end, height_);
      for (int pw = 0; pw < pooled_w_; ++pw) {
        const Window ww = Span(pw, 1);
        const int w0 = ww.start, w1 = std::min(ww.end, width_);
        const long at = plane * out_plane + ph * pooled_w_ + pw;
        float sum = 0;
        float squares = 0;
        for (int h = h0; h < h1; ++h) {
          for (int w = w0; w < w1; ++w) {
            const float v = src[h * width_ + w];
            sum += v;
            squares += v * v;
          }
        }
        if (!train) {
          y[at] = squares / (FLT_MIN + sum);
          continue;
        }
        const float threshold = uniforms_[at] * sum;
        // The last element when rounding keeps the running sum below the threshold.
        int chosen = (h1 - 1) * width_ + (w1 - 1);
        float running = 0;
        bool found = false;
        for (int h = h0; h < h1 && !found; ++h) {
          for (int w = w0; w < w1; ++w) {
            running += src[h * width_ + w];
            if (running >= threshold) {
              chosen = h * width_ + w;
              found = true;
              break;
            }
          }
        }
        argmax_[at] = chosen;
        y[at] = src[chosen];
      }
    }
  });
}

void PoolingLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  if (method_ == Method::kStochastic) {
    ForwardStochastic(x, y);
    return;
  }
  float* mask_top = top.size() > 1 ? top[1]->mutable_data() : nullptr;
  const long planes = static_cast<long>(num_) * channels_;
  const long in_plane = static_cast<long>(height_) * width_;
  const long out_plane = static_cast<long>(pooled_h_) * pooled_w_;
  int* argmax = method_ == Method::kMax ? argmax_.data() : nullptr;
  // The last planes' copy (see PlanTail), filled here so the loop allocates nothing.
  const long first_copied = planes - tail_planes_;
  if (tail_planes_ > 0) std::copy(x + first_copied * in_plane, x + planes * in_plane, tail_.begin());
  ParallelFor(planes, planes * in_plane * kWindowedElementWork, [&](int64_t plane) {
    const float* src = plane < first_copied ? x + plane * in_plane
                                            : tail_.data() + (plane - first_copied) * in_plane;
    for (int ph = 0; ph < pooled_h_; ++ph) {
      const long at = plane * out_plane + ph * pooled_w_;
      ForwardRow(src, ph, y + at, argmax ? argmax + at : nullptr);
    }
    if (mask_top) {
      for (long i = plane * out_plane; i < (plane + 1) * out_plane; ++i) {
        mask_top[i] = static_cast<float>(argmax[i]);
      }
    }
  });
}

// AVE, output row ph of one plane: every window spreads dy / divisor over its part inside the
// image. The windows of one output row cover the same input rows, so their shares are summed
// into one input-width line (pw ascending), which is then added to rows h0 .. h1-1.
void PoolingLayer::BackwardAveRow(const float* dy, int ph, float* dst, float* line) const {
  const Window wh = Span(ph, 0);
  const int h0 = std::max(wh.start, 0), h1 = std::min(wh.end, height_);
  std::fill(line, line + width_, 0.0f);
  for (int pw = 0; pw < pooled_w_; ++pw) {
    const Window ww = Span(pw, 1);
    const int w0 = std::max(ww.start, 0), w1 = std::min(ww.end, width_);
    const float share = dy[pw] / ((wh.end - wh.start) * (ww.end - ww.start));
    for (int w = w0; w < w1; ++w) line[w] += share;
  }
  for (int h = h0; h < h1; ++h) {
    float* row = dst + h * width_;
    for (int w = 0; w < width_; ++w) row[w] += line[w];
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
  COS_LAYER_CHECK(method_ != Method::kStochastic || phase_ == Phase::kTrain, ConfigError,
                  "STOCHASTIC pooling has a backward pass only in the TRAIN phase");
  const bool is_max = method_ != Method::kAve;  // STOCHASTIC routes dy like MAX
  const int* argmax = is_max ? argmax_.data() : nullptr;
  ParallelForWithScratch(
      planes, planes * in_plane * kWindowedElementWork,
      [&] { return std::vector<float>(is_max ? 0 : width_); },
      [&](int64_t plane, std::vector<float>& line) {
        float* dst = dx + plane * in_plane;
        std::fill(dst, dst + in_plane, 0.0f);
        const float* grad = dy + plane * out_plane;
        if (is_max) {
          // Each output routes its gradient to its argmax (-1: an empty window), in output order.
          const int* index = argmax + plane * out_plane;
          for (long at = 0; at < out_plane; ++at) {
            if (index[at] >= 0) dst[index[at]] += grad[at];
          }
        } else {
          for (int ph = 0; ph < pooled_h_; ++ph) {
            BackwardAveRow(grad + ph * pooled_w_, ph, dst, line.data());
          }
        }
      });
}

}  // namespace caffeonspark
