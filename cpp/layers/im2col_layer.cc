// Im2col (rules in im2col_layer.h).
#include "layers/im2col_layer.h"

#include "core/checked_size.h"
#include "core/parallel.h"
#include "layers/convolution.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

void Im2colLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("convolution_param");
  channel_axis_ = bottom[0]->CanonicalAxis(p.integer("axis"));
  num_spatial_axes_ = bottom[0]->num_axes() - channel_axis_ - 1;
  COS_LAYER_CHECK(num_spatial_axes_ >= 1, ShapeError, "bottom ", bottom[0]->shape_string(),
                  " has no spatial axis after the channel axis ", channel_axis_);
  COS_LAYER_CHECK(num_spatial_axes_ <= kMaxConvAxes, ConfigError, "at most ", kMaxConvAxes,
                  " spatial axes, got ", num_spatial_axes_);
  ConvSpatialParams g = ParseConvSpatialParams(p, num_spatial_axes_, where());
  geom_.kernel = g.kernel;
  geom_.pad = g.pad;
  geom_.stride = g.stride;
  geom_.dilation = g.dilation;
  use_2d_ = num_spatial_axes_ == 2 && !p.flag("force_nd_im2col");
}

void Im2colLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() == channel_axis_ + 1 + num_spatial_axes_, ShapeError, "bottom ",
                  x.shape_string(), " must keep ", channel_axis_ + 1 + num_spatial_axes_,
                  " axes (set up with ", num_spatial_axes_, " spatial axes)");
  const std::string prefix = where();
  geom_.channels = x.shape(channel_axis_);
  geom_.image.assign(x.shape().begin() + channel_axis_ + 1, x.shape().end());
  geom_.output.assign(num_spatial_axes_, 0);
  std::vector<int64_t> top_shape(x.shape().begin(), x.shape().end());
  int64_t rows = geom_.channels;
  for (int a = 0; a < num_spatial_axes_; ++a) {
    CheckedAdd(CheckedMul(geom_.dilation[a], geom_.kernel[a] - 1, prefix, "dilated kernel extent"),
               1, prefix, "dilated kernel extent");
    CheckedAdd(geom_.image[a], 2 * static_cast<int64_t>(geom_.pad[a]), prefix,
               "padded input extent");
    const int64_t out = ConvOutputExtent(geom_.image[a], geom_.kernel[a], geom_.pad[a],
                                         geom_.stride[a], geom_.dilation[a]);
    COS_LAYER_CHECK(out > 0, ShapeError, "the dilated kernel does not fit spatial axis ", a,
                    " of bottom ", x.shape_string(), " (pad ", geom_.pad[a], ")");
    geom_.output[a] = static_cast<int>(out);
    top_shape[channel_axis_ + 1 + a] = out;
    rows = CheckedMul(rows, geom_.kernel[a], prefix, "column rows");
  }
  top_shape[channel_axis_] = rows;
  CheckedCount(top_shape, prefix, "top count");
  top[0]->Reshape(std::vector<int>(top_shape.begin(), top_shape.end()));
  num_ = x.count(0, channel_axis_);
  bottom_dim_ = x.count(channel_axis_);
  top_dim_ = top[0]->count(channel_axis_);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  const long scratch = use_2d_ ? Im2colScratchSize(geom_) : 0;
  scratch_.resize(threads);
  for (auto& s : scratch_) s.resize(scratch);
}

template <typename Fn>
void Im2colLayer::ForEachImage(Fn fn) {
#pragma omp parallel for if (WorthParallel(num_ * top_dim_))
  for (int64_t n = 0; n < num_; ++n) {
#ifdef _OPENMP
    fn(n, scratch_[omp_get_thread_num()].data());
#else
    fn(n, scratch_[0].data());
#endif
  }
}

void Im2colLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  ForEachImage([&](int64_t n, float* scratch) {
    if (use_2d_) {
      im2col_2d(x + n * bottom_dim_, geom_, y + n * top_dim_, scratch);
    } else {
      im2col_nd(x + n * bottom_dim_, geom_, y + n * top_dim_);
    }
  });
}

void Im2colLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                               const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  ForEachImage([&](int64_t n, float* scratch) {
    if (use_2d_) {
      col2im_2d(dy + n * top_dim_, geom_, dx + n * bottom_dim_, scratch);
    } else {
      col2im_nd(dy + n * top_dim_, geom_, dx + n * bottom_dim_);
    }
  });
}

}  // namespace caffeonspark
