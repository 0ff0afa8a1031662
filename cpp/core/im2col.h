// im2col / col2im: the unfolding that turns a convolution into one matrix product.
//
// For one image of C channels, the column matrix has C·∏k rows (channel-major, then kernel
// offsets in row-major order) and ∏out columns (output positions in row-major order):
//   col[(c, k_0..k_{d-1}), (o_0..o_{d-1})] = im[c, o_i·stride_i − pad_i + k_i·dilation_i]
// and 0 where that index falls outside the image (zero padding). col2im is the adjoint: it
// ADDS every column entry back onto the pixel it came from (overlapping windows sum), after
// zeroing the image. Output extent per axis: (in + 2·pad − (dilation·(k−1)+1)) / stride + 1.
//
// The 2-D functions are the fast path used by Convolution/Deconvolution; the N-D pair serves
// any number of spatial axes (up to kMaxConvAxes: 3-D convolution, force_nd_im2col). Each
// function touches one image and is safe to call concurrently on different buffers; none
// allocates (they run inside parallel regions, core/parallel.h): the 2-D pair takes a scratch
// of Im2colScratchSize floats for the zero-padded image.
// Tests: tests/layers/test_convolution.py (through the layers, against direct loops).
#pragma once

#include <cstdint>
#include <vector>

namespace caffeonspark {

// Geometry of one convolution over `spatial.size()` axes (2 for the 2-D functions).
struct ConvGeometry {
  int channels = 0;               // image channels unfolded into the column rows
  std::vector<int> image;         // spatial extent of the image
  std::vector<int> output;        // spatial extent of the output (columns)
  std::vector<int> kernel, pad, stride, dilation;

  int num_spatial_axes() const { return static_cast<int>(image.size()); }
  long image_size() const;        // ∏image
  long output_size() const;       // ∏output
  long kernel_size() const;       // ∏kernel
};

// Spatial axes the N-D functions handle (Caffe's own limit on a blob's axes).
inline constexpr int kMaxConvAxes = 32;

// Output extent of one axis with Caffe's floor rule, in 64-bit (no wrap for any int inputs);
// <= 0 means the kernel does not fit.
int64_t ConvOutputExtent(int64_t in, int64_t kernel, int64_t pad, int64_t stride, int64_t dilation);

// Floats of scratch the 2-D functions need for g (0 without padding).
long Im2colScratchSize(const ConvGeometry& g);
void im2col_2d(const float* im, const ConvGeometry& g, float* col, float* scratch);
void col2im_2d(const float* col, const ConvGeometry& g, float* im, float* scratch);
void im2col_nd(const float* im, const ConvGeometry& g, float* col);
void col2im_nd(const float* col, const ConvGeometry& g, float* im);

}  // namespace caffeonspark
