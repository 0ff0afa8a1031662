#include "core/im2col.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace caffeonspark {

namespace {

long Product(const std::vector<int>& v) {
  long p = 1;
  for (int x : v) p *= x;
  return p;
}

// The image zero-padded on every side, (C, H + 2·pad_h, W + 2·pad_w), in the caller's
// scratch (Im2colScratchSize floats); the image itself when there is no padding. With it every window row is a plain
// strided read: no bounds tests in the inner loops.
const float* PaddedImage(const float* im, const ConvGeometry& g, float* padded) {
  const int H = g.image[0], W = g.image[1], ph = g.pad[0], pw = g.pad[1];
  if (ph == 0 && pw == 0) return im;
  const int PH = H + 2 * ph, PW = W + 2 * pw;
  std::fill(padded, padded + static_cast<size_t>(g.channels) * PH * PW, 0.0f);
  for (int c = 0; c < g.channels; ++c) {
    for (int h = 0; h < H; ++h) {
      std::memcpy(&padded[(static_cast<size_t>(c) * PH + h + ph) * PW + pw],
                  im + (static_cast<long>(c) * H + h) * W, sizeof(float) * W);
    }
  }
  return padded;
}

// Calls fn(column row pointer offset, padded-image offset) for every (channel, kernel row,
// kernel column, output row): the OW columns of that output row read the padded image at
// offset + ow·stride_w.
template <typename Fn>
void ForEachWindowRow(const ConvGeometry& g, Fn fn) {
  const int PH = g.image[0] + 2 * g.pad[0], PW = g.image[1] + 2 * g.pad[1];
  const int OH = g.output[0], OW = g.output[1];
  long at = 0;
  for (int c = 0; c < g.channels; ++c) {
    for (int ki = 0; ki < g.kernel[0]; ++ki) {
      for (int kj = 0; kj < g.kernel[1]; ++kj) {
        const long base = (static_cast<long>(c) * PH + ki * g.dilation[0]) * PW + kj * g.dilation[1];
        for (int oh = 0; oh < OH; ++oh, at += OW) {
          fn(at, base + static_cast<long>(oh) * g.stride[0] * PW);
        }
      }
    }
  }
}

template <int kStride>  // 1: unit stride (vectorised copies); 0: any stride
void Unfold2d(const float* padded, const ConvGeometry& g, float* col) {
  const int OW = g.output[1], sw = kStride == 1 ? 1 : g.stride[1];
  ForEachWindowRow(g, [&](long at, long from) {
    const float* src = padded + from;
    float* dst = col + at;
    for (int o = 0; o < OW; ++o) dst[o] = src[o * sw];
  });
}

template <int kStride>
void Fold2d(const float* col, const ConvGeometry& g, float* padded) {
  const int OW = g.output[1], sw = kStride == 1 ? 1 : g.stride[1];
  ForEachWindowRow(g, [&](long at, long to) {
    const float* src = col + at;
    float* dst = padded + to;
    for (int o = 0; o < OW; ++o) dst[o * sw] += src[o];
  });
}

}  // namespace

long ConvGeometry::image_size() const { return Product(image); }
long ConvGeometry::output_size() const { return Product(output); }
long ConvGeometry::kernel_size() const { return Product(kernel); }

long Im2colScratchSize(const ConvGeometry& g) {
  if (g.num_spatial_axes() != 2 || (g.pad[0] == 0 && g.pad[1] == 0)) return 0;
  return static_cast<long>(g.channels) * (g.image[0] + 2L * g.pad[0]) * (g.image[1] + 2L * g.pad[1]);
}

int64_t ConvOutputExtent(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation) {
  const int64_t extent = dilation * (kernel - 1) + 1;
  const int64_t span = in + 2 * pad - extent;
  return span < 0 ? 0 : span / stride + 1;
}

void im2col_2d(const float* im, const ConvGeometry& g, float* col, float* scratch) {
  const float* padded = PaddedImage(im, g, scratch);
  if (g.stride[1] == 1) {
    Unfold2d<1>(padded, g, col);
  } else {
    Unfold2d<0>(padded, g, col);
  }
}

void col2im_2d(const float* col, const ConvGeometry& g, float* im, float* scratch) {
  const int H = g.image[0], W = g.image[1], ph = g.pad[0], pw = g.pad[1];
  const int PH = H + 2 * ph, PW = W + 2 * pw;
  const bool padded = ph != 0 || pw != 0;
  float* acc = padded ? scratch : im;
  std::fill(acc, acc + static_cast<long>(g.channels) * PH * PW, 0.0f);
  if (g.stride[1] == 1) {
    Fold2d<1>(col, g, acc);
  } else {
    Fold2d<0>(col, g, acc);
  }
  if (!padded) return;
  for (int c = 0; c < g.channels; ++c) {
    for (int h = 0; h < H; ++h) {
      std::memcpy(im + (static_cast<long>(c) * H + h) * W,
                  acc + (static_cast<long>(c) * PH + h + ph) * PW + pw, sizeof(float) * W);
    }
  }
}

namespace {

// Walks the N-D unfolding: for each column row (channel, kernel offset) and each output
// position, calls fn(column index, image index or -1 inside the padding).
template <typename Fn>
void ForEachEntryNd(const ConvGeometry& g, Fn fn) {
  const int d = g.num_spatial_axes();
  const long kernel_count = g.kernel_size(), outputs = g.output_size();
  const long image_count = g.image_size();
  std::array<int, kMaxConvAxes> k{}, o{};
  for (long row = 0; row < g.channels * kernel_count; ++row) {
    const long c = row / kernel_count;
    long rest = row % kernel_count;
    for (int a = d - 1; a >= 0; --a) {
      k[a] = static_cast<int>(rest % g.kernel[a]);
      rest /= g.kernel[a];
    }
    std::fill(o.begin(), o.begin() + d, 0);
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
