#include "core/im2col.h"

#include <algorithm>
#include <cstring>

namespace caffeonspark {

namespace {

long Product(const std::vector<int>& v) {
  long p = 1;
  for (int x : v) p *= x;
  return p;
}

// Ceiling of a / b for b > 0 and any sign of a.
int CeilDiv(int a, int b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// The output columns [lo, hi) whose input index o·stride + offset lies inside [0, extent).
void ValidRange(int offset, int stride, int extent, int outputs, int* lo, int* hi) {
  *lo = std::min(outputs, std::max(0, CeilDiv(-offset, stride)));
  *hi = std::max(*lo, std::min(outputs, CeilDiv(extent - offset, stride)));
}

// Visits every (column row, output row) pair of the 2-D unfolding with the matching image
// row (nullptr-free: `image_row` is -1 when the row lies in the padding) and the column range
// [lo, hi) that reads real pixels at input column o·stride_w + offset.
template <typename RowFn>
void ForEachRow2d(const ConvGeometry& g, RowFn fn) {
  const int H = g.image[0], W = g.image[1];
  const int OH = g.output[0], OW = g.output[1];
  const int kh = g.kernel[0], kw = g.kernel[1];
  long row = 0;
  for (int c = 0; c < g.channels; ++c) {
    for (int ki = 0; ki < kh; ++ki) {
      for (int kj = 0; kj < kw; ++kj, ++row) {
        const int offset = kj * g.dilation[1] - g.pad[1];
        int lo, hi;
        ValidRange(offset, g.stride[1], W, OW, &lo, &hi);
        for (int oh = 0; oh < OH; ++oh) {
          const int ih = oh * g.stride[0] - g.pad[0] + ki * g.dilation[0];
          const long image_row = (ih >= 0 && ih < H) ? (static_cast<long>(c) * H + ih) * W : -1;
          fn((row * OH + oh) * OW, image_row, offset, lo, hi);
        }
      }
    }
  }
}

}  // namespace

long ConvGeometry::image_size() const { return Product(image); }
long ConvGeometry::output_size() const { return Product(output); }
long ConvGeometry::kernel_size() const { return Product(kernel); }

int ConvOutputExtent(int in, int kernel, int pad, int stride, int dilation) {
  const int extent = dilation * (kernel - 1) + 1;
  const int span = in + 2 * pad - extent;
  return span < 0 ? 0 : span / stride + 1;
}

void im2col_2d(const float* im, const ConvGeometry& g, float* col) {
  const int OW = g.output[1], sw = g.stride[1];
  ForEachRow2d(g, [&](long col_at, long image_row, int offset, int lo, int hi) {
    float* dst = col + col_at;
    if (image_row < 0) {
      std::memset(dst, 0, sizeof(float) * OW);
      return;
    }
    const float* src = im + image_row + offset;
    std::fill(dst, dst + lo, 0.0f);
    if (sw == 1) {
      std::memcpy(dst + lo, src + lo, sizeof(float) * (hi - lo));
    } else {
      for (int o = lo; o < hi; ++o) dst[o] = src[static_cast<long>(o) * sw];
    }
    std::fill(dst + hi, dst + OW, 0.0f);
  });
}

void col2im_2d(const float* col, const ConvGeometry& g, float* im) {
  std::fill(im, im + static_cast<long>(g.channels) * g.image_size(), 0.0f);
  const int sw = g.stride[1];
  ForEachRow2d(g, [&](long col_at, long image_row, int offset, int lo, int hi) {
    if (image_row < 0) return;
    const float* src = col + col_at;
    float* dst = im + image_row + offset;
    if (sw == 1) {
      for (int o = lo; o < hi; ++o) dst[o] += src[o];
    } else {
      for (int o = lo; o < hi; ++o) dst[static_cast<long>(o) * sw] += src[o];
    }
  });
}

namespace {

// Walks the N-D unfolding: for each column row (channel, kernel offset) and each output
// position, calls fn(column index, image index or -1 inside the padding).
template <typename Fn>
void ForEachEntryNd(const ConvGeometry& g, Fn fn) {
  const int d = g.num_spatial_axes();
  const long kernel_count = g.kernel_size(), outputs = g.output_size();
  const long image_count = g.image_size();
  std::vector<int> k(d), o(d);
  for (long row = 0; row < g.channels * kernel_count; ++row) {
    const long c = row / kernel_count;
    long rest = row % kernel_count;
    for (int a = d - 1; a >= 0; --a) {
      k[a] = static_cast<int>(rest % g.kernel[a]);
      rest /= g.kernel[a];
    }
    std::fill(o.begin(), o.end(), 0);
    for (long column = 0; column < outputs; ++column) {
      long index = 0;
      bool inside = true;
      for (int a = 0; a < d && inside; ++a) {
        const int i = o[a] * g.stride[a] - g.pad[a] + k[a] * g.dilation[a];
        inside = i >= 0 && i < g.image[a];
        index = index * g.image[a] + i;
      }
      fn(row * outputs + column, inside ? c * image_count + index : -1);
      for (int a = d - 1; a >= 0; --a) {  // odometer step over the output positions
        if (++o[a] < g.output[a]) break;
        o[a] = 0;
      }
    }
  }
}

}  // namespace

void im2col_nd(const float* im, const ConvGeometry& g, float* col) {
  ForEachEntryNd(g, [&](long at, long index) { col[at] = index < 0 ? 0.0f : im[index]; });
}

void col2im_nd(const float* col, const ConvGeometry& g, float* im) {
  std::fill(im, im + static_cast<long>(g.channels) * g.image_size(), 0.0f);
  ForEachEntryNd(g, [&](long at, long index) {
    if (index >= 0) im[index] += col[at];
  });
}

}  // namespace caffeonspark
