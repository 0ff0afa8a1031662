// Im2col: a convolution's unfolding as a layer (convolution_param; no learned blobs).
//
// "Im2col": bottom (batch..., C, spatial...) with the channel axis at convolution_param.axis
// (1); top (batch..., C·∏k, out...) where, per spatial axis,
// out = (in + 2·pad − (dilation·(k−1)+1)) / stride + 1 (floor), and for every image
//   y[(c, k_0..k_{d-1}), o_0..o_{d-1}] = x[c, o_i·stride_i − pad_i + k_i·dilation_i]
// (0 where that falls in the padding): the column matrix of core/im2col.h, row (c, k) over
// output positions. Backward is col2im: dx[c, p] = Σ of the dy entries unfolded from p.
// Parameters as Convolution's geometry (docs/CAFFE.md §2.1): kernel_size or kernel_h/w
// (required), pad (0), stride (1), dilation (1), axis (1), force_nd_im2col (the N-D unfolding
// also for 2-D; same values). num_output, group and the fillers are not used.
// Tests: tests/layers/test_im2col.py.
#pragma once

#include <vector>

#include "core/im2col.h"
#include "layers/layer.h"

namespace caffeonspark {

class Im2colLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Im2col"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Runs fn(image, scratch) over the images, spread over threads, each with its own scratch
  // for the 2-D functions (sized in Reshape).
  template <typename Fn>
  void ForEachImage(Fn fn);

  int channel_axis_ = 1, num_spatial_axes_ = 0;
  bool use_2d_ = true;
  ConvGeometry geom_;
  int64_t num_ = 0, bottom_dim_ = 0, top_dim_ = 0;
  std::vector<std::vector<float>> scratch_;  // one per thread
};

}  // namespace caffeonspark
