// LRN across and within channels (rules in lrn.h). Tests: tests/layers/test_lrn.py.
#include "layers/lrn.h"

#include <algorithm>
#include <cmath>

#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {

// LRN's loops go parallel at the windowed-work threshold (half the element count of a
// plain loop): its pow and window sums are heavy per element, and its light square and
// ratio loops have always shared that threshold.
int64_t Work(long elements) { return elements * kWindowedElementWork; }

}  // namespace

void LRNLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("lrn_param");
  size_ = p.integer("local_size");
  COS_LAYER_CHECK(size_ > 0 && size_ % 2 == 1, ConfigError,
                  "lrn_param.local_size must be a positive odd number, got ", size_);
  alpha_ = p.real("alpha");
  beta_ = p.real("beta");
  k_ = p.real("k");
  const std::string region = p.size("norm_region") ? p.str("norm_region") : "ACROSS_CHANNELS";
  COS_LAYER_CHECK(region == "ACROSS_CHANNELS" || region == "WITHIN_CHANNEL", ConfigError,
                  "unknown lrn_param.norm_region '", region, "'");
  across_ = region == "ACROSS_CHANNELS";
}

void LRNLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() == 4, ShapeError, "bottom must have 4 axes (N, C, H, W), got ",
                  x.shape_string());
  num_ = x.shape(0);
  channels_ = x.shape(1);
  height_ = x.shape(2);
  width_ = x.shape(3);
  top[0]->ReshapeLike(x);
  scale_.ReshapeLike(x);
  work_.ReshapeLike(x);
}

void LRNLayer::WindowSum(const float* values, float* out) const {
  const int half = (size_ - 1) / 2;
  const long plane = static_cast<long>(height_) * width_;
  const long total = static_cast<long>(num_) * channels_ * plane;
  if (across_) {
    const long rows = static_cast<long>(num_) * channels_;
    ParallelFor(rows, Work(total), [&](int64_t row) {
      const long n = row / channels_;
      const int c = static_cast<int>(row % channels_);
      float* dst = out + row * plane;
      std::fill(dst, dst + plane, 0.0f);
      const int c0 = std::max(c - half, 0), c1 = std::min(c + half, channels_ - 1);
      for (int cc = c0; cc <= c1; ++cc) {
        const float* src = values + (n * channels_ + cc) * plane;
        for (long i = 0; i < plane; ++i) dst[i] += src[i];
      }
    });
    return;
  }
  // n×n box with zero padding, separably: along each row, then along each column.
  const long planes = static_cast<long>(num_) * channels_;
  ParallelForWithScratch(
      planes, Work(total), [&] { return std::vector<float>(plane); },
      [&](int64_t p, std::vector<float>& rows) {
        const float* src = values + p * plane;
        float* dst = out + p * plane;
        for (int h = 0; h < height_; ++h) {
          for (int w = 0; w < width_; ++w) {
            float sum = 0;
            const int w0 = std::max(w - half, 0), w1 = std::min(w + half, width_ - 1);
            for (int ww = w0; ww <= w1; ++ww) sum += src[h * width_ + ww];
            rows[h * width_ + w] = sum;
          }
        }
        for (int h = 0; h < height_; ++h) {
          const int h0 = std::max(h - half, 0), h1 = std::min(h + half, height_ - 1);
          float* line = dst + h * width_;
          std::fill(line, line + width_, 0.0f);
          for (int hh = h0; hh <= h1; ++hh) {
            const float* r = rows.data() + hh * width_;
            for (int w = 0; w < width_; ++w) line[w] += r[w];
          }
        }
      });
}

void LRNLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  float* s = scale_.mutable_data();
  float* sq = work_.mutable_data();
  const long count = bottom[0]->count();
  const float shift = across_ ? k_ : 1.0f;
  const float coeff = across_ ? alpha_ / size_ : alpha_ / (size_ * size_);
  const float power = -beta_;
  ParallelFor(count, Work(count), [&](int64_t i) { sq[i] = x[i] * x[i]; });
  WindowSum(sq, s);
  ParallelFor(count, Work(count), [&](int64_t i) {
    s[i] = shift + coeff * s[i];
    y[i] = x[i] * std::pow(s[i], power);
  });
}

void LRNLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* x = bottom[0]->data();
  const float* y = top[0]->data();
  const float* dy = top[0]->diff();
  const float* s = scale_.data();
  float* dx = bottom[0]->mutable_diff();
  window_.ReshapeLike(*bottom[0]);
  float* ratio = work_.mutable_data();
  float* window = window_.mutable_data();
  const long count = bottom[0]->count();
  const float coeff = 2.0f * alpha_ * beta_ / (across_ ? size_ : size_ * size_);
  const float power = -beta_;
  ParallelFor(count, Work(count), [&](int64_t i) { ratio[i] = dy[i] * y[i] / s[i]; });
  WindowSum(ratio, window);
  ParallelFor(count, Work(count), [&](int64_t i) {
    dx[i] = dy[i] * std::pow(s[i], power) - coeff * x[i] * window[i];
  });
}

}  // namespace caffeonspark
