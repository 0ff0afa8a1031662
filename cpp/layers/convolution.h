// Convolution and Deconvolution (convolution_param), docs/CAFFE.md §2.1.
//
// "Convolution": y[n, o, p] = b[o] + Σ_{c in group(o), k} W[o, c, k] · x[n, c, p·stride − pad +
// k·dilation] (zero outside the image). Bottom (batch..., C, spatial...) with the channel axis
// at `axis` (1); axes before it are batch axes, axes after it spatial (any number: 2-D, 3-D).
// Top (batch..., num_output, out...) with out = (in + 2·pad − (dilation·(k−1)+1)) / stride + 1
// (floor). Weight (num_output, C/group, k...), bias (num_output) when bias_term.
// "Deconvolution" is its transpose: forward = convolution's backward-data, backward =
// convolution's forward; out = stride·(in − 1) + dilation·(k−1)+1 − 2·pad; weight
// (C, num_output/group, k...).
// Parameters: num_output (required), kernel_size / pad / stride / dilation repeated (one value
// for every spatial axis or one per axis; pad 0, stride 1, dilation 1 by default) or the 2-D
// kernel_h/w, pad_h/w, stride_h/w; group (1): C and num_output divisible by it, output group
// g sees input group g only; bias_term (true); weight_filler / bias_filler (constant 0 when
// absent); force_nd_im2col. Several bottoms give as many tops, all with the same weights and
// the same shape.
//
// Cost: per image and group one product (M/g × K × ∏out, K = C/g·∏k) run by core/small_gemm.h
// (register-blocked, operands read in place). 2-D layers take gather products where they pay:
// the products read the zero-padded image through offset tables (small_gemm_gather) instead
// of an im2col copy, with output channels as the vector axis (weight gradient: always;
// forward: M/g % 16 == 0) or input channels (data gradient, stride 1, pad <= dilation·(k−1),
// C/g % 16 == 0: a correlation of the padded output gradient with the flipped kernel, no
// col2im). The rest unfolds with im2col/col2im; 1×1 kernels with stride 1 and no padding read
// the image as its own column matrix. Images are spread over OpenMP threads, each with its own
// workspace (a single image's products split their rows over the threads instead); weight-
// and bias-gradient accumulators are summed in thread order, so results repeat for a given
// thread count.
// Code: convolution.cc (parameters, shapes, layers), convolution_products.cc (the products).
// Tests: tests/layers/test_convolution.py (+ the golden nets in tests/net/).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/aligned_vector.h"
#include "core/im2col.h"
#include "layers/layer.h"

namespace caffeonspark {

// kernel / pad / stride / dilation of convolution_param, one value per spatial axis (the
// repeated fields or the 2-D *_h/*_w pairs; pad 0, stride 1, dilation 1 by default), checked.
// Shared with Im2col (cpp/layers/im2col_layer.h). `where` prefixes the ConfigErrors.
struct ConvSpatialParams {
  std::vector<int> kernel, pad, stride, dilation;
};
ConvSpatialParams ParseConvSpatialParams(const Params& p, int axes, const std::string& where);

class BaseConvolutionLayer : public Layer {
 public:
  using Layer::Layer;
  int MinBottomBlobs() const override { return 1; }
  int MinTopBlobs() const override { return 1; }
  bool EqualNumBottomTopBlobs() const override { return true; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  // Deconvolution swaps the roles of the layer's input and output in the underlying conv.
  virtual bool reverse_dimensions() const = 0;
  // Spatial extent of the top from the bottom's (`in`), axis by axis.
  // In 64-bit: Reshape checks the result against the int32 limits before using it.
  virtual int64_t OutputExtent(int axis, int64_t in) const = 0;

  // One thread's scratch, 64-byte aligned: im2col columns, the zero-padded input (gather
  // path), the zero-padded output gradient (gather data path), a channel-minor product before
  // its transposition, the output gradient transposed per group (∏out × padded_out_), the
  // thread's transposed weight gradient (group × K × padded_out_) and bias gradient (double).
  struct PaddedBuffer {
    AlignedVector<float> data;
    std::array<long, 5> shape = {-1, -1, -1, -1, -1};  // channels, H, W, pad_h, pad_w
  };
  struct Workspace {
    AlignedVector<float> col, product_t, grad_t, weight_grad;
    std::vector<float> unfold;  // im2col_2d / col2im_2d's zero-padded image
    PaddedBuffer padded, padded_grad;
    std::vector<double> bias_grad;
  };

  // Packs blobs_[0] for the gather products about to run (forward: Wᵀ per group, K ×
  // padded_out_; data: the flipped kernel per group, (M/g)·∏k × padded_in_); call before
  // ForEachImage when the weights may have changed.
  void PackWeights(bool forward, bool data);

  // Per-image primitives in the convolution's own direction ("input" = what is unfolded).
  // output (conv_out × ∏out) = W · im2col(input) (+ bias[o] per output channel, when given:
  // added to the finished sum, as a separate pass would).
  void ForwardGemm(const float* input, float* output, const float* bias, Workspace& ws) const;
  // input_grad (overwritten) = col2im(Wᵀ · output_grad) (+ bias per channel, when given).
  void BackwardGemm(const float* output_grad, float* input_grad, const float* bias,
                    Workspace& ws) const;
  // ws.weight_grad += im2col(input) · output_gradᵀ: the weight gradient transposed per group,
  // (K × padded_out_), the output channel as the vector axis. with_bias: also ws.bias_grad[o]
  // += Σ_p output_grad[o, p] (a convolution's bias gradient, summed while transposing).
  void WeightGemm(const float* input, const float* output_grad, bool with_bias,
                  Workspace& ws) const;
  void AddBias(float* output, const float* bias) const;          // output[o, :] += bias[o]
  // ws.bias_grad[o] += Σ_p output_grad[o, p] for one image (in double), while that image's
  // gradient is in cache for the other products (when WeightGemm does not already).
  void BiasGrad(const float* output_grad, Workspace& ws) const;

  // Runs fn(n, workspace) for every image n in [0, num_), the images spread over OpenMP
  // threads, each with its own workspace; when accumulate_weights (accumulate_bias), the
  // workspaces' weight (bias) gradients start at zero and are summed in thread order into
  // blobs_[0]'s (blobs_[1]'s) diff at the end.
  // `uses`: which products fn runs (kUses* bits), so that only their buffers are sized.
  enum : int { kUsesForward = 1, kUsesBackward = 2, kUsesWeights = 4 };
  template <typename Fn>
  void ForEachImage(int uses, bool accumulate_weights, bool accumulate_bias, Fn fn);

  int num_ = 0;                       // images: product of the axes before the channel axis
  int channel_axis_ = 1, num_spatial_axes_ = 0;
  int channels_ = 0, num_output_ = 0, group_ = 1;
  bool bias_term_ = true, force_nd_im2col_ = false, is_1x1_ = false;
  std::vector<int> kernel_, pad_, stride_, dilation_;
  ConvGeometry geom_;                 // the unfolding of one group: its channels, extents
  int conv_out_channels_ = 0, conv_in_channels_ = 0;
  long kernel_dim_ = 0;               // K = conv_in_channels / group · ∏kernel
  long bottom_dim_ = 0, top_dim_ = 0;          // per image, in the layer's own direction
  long padded_out_ = 0, padded_in_ = 0;        // conv_out/group, conv_in/group rounded up to 16

 private:
  void ParseGeometry(const Params& p);
  static const float* Padded(const float* image, long channels, int H, int W, int ph, int pw,
                             PaddedBuffer& buffer);
  // Chooses the paths and builds the gather tables for the current shapes.
  void PlanProducts();
  // Checks (ConfigError naming the layer) that every buffer the products may need stays
  // within kMaxElements; SizeWorkspace then sizes a thread's buffers for `uses` (before the
  // parallel region, which must not allocate).
  void CheckScratchSizes() const;
  void SizeWorkspace(int uses, Workspace& ws) const;

  // Gather paths and their offset tables (one group; see the file comment).
  bool gather_forward_ = false, gather_weights_ = false, gather_data_ = false;
  std::vector<int> positions_, taps_;            // into the padded input: ∏out and K entries
  std::vector<int> data_positions_, data_taps_;  // into the padded output gradient
  std::vector<int> grad_pad_;                    // its padding: dilation·(k−1) − pad per axis
  AlignedVector<float> packed_forward_, packed_data_;
  std::vector<Workspace> workspaces_;  // one per thread
};

class ConvolutionLayer : public BaseConvolutionLayer {
 public:
  using BaseConvolutionLayer::BaseConvolutionLayer;
  const char* type() const override { return "Convolution"; }

 protected:
  bool reverse_dimensions() const override { return false; }
  int64_t OutputExtent(int axis, int64_t in) const override;
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

class DeconvolutionLayer : public BaseConvolutionLayer {
 public:
  using BaseConvolutionLayer::BaseConvolutionLayer;
  const char* type() const override { return "Deconvolution"; }

 protected:
  bool reverse_dimensions() const override { return true; }
  int64_t OutputExtent(int axis, int64_t in) const override;
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

}  // namespace caffeonspark
