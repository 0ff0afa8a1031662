#include "layers/convolution.h"

#include <algorithm>

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/math.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

namespace {

int ThreadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// A 2-D alternative field (kernel_h/kernel_w, pad_h/pad_w, stride_h/stride_w) counts as given
// when either half is present and non-zero: whether unset fields arrive filled with 0 or
// absent, 0 then means "not given" (a zero kernel or stride is invalid anyway).
bool Given2d(const Params& p, const std::string& h, const std::string& w) {
  return (p.size(h) && p.integer(h) != 0) || (p.size(w) && p.integer(w) != 0);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Set-up and shapes
// ---------------------------------------------------------------------------------------

ConvSpatialParams ParseConvSpatialParams(const Params& p, int axes, const std::string& where) {
  // One of the repeated fields: no value -> fallback, one value -> every axis, else per axis.
  auto per_axis = [&](const char* field, int fallback) {
    const int n = static_cast<int>(p.size(field));
    COS_CHECK(n == 0 || n == 1 || n == axes, ConfigError, where, "convolution_param.", field,
              " must hold 1 value or one per spatial axis (", axes, "), got ", n);
    std::vector<int> out(axes, fallback);
    for (int a = 0; a < axes && n > 0; ++a) out[a] = p.integer(field, n == 1 ? 0 : a);
    return out;
  };
  auto pair_2d = [&](const char* repeated, const std::string& h, const std::string& w,
                     std::vector<int>* out) {
    if (!Given2d(p, h, w)) return false;
    COS_CHECK(axes == 2, ConfigError, where, h, "/", w,
              " can only be used for 2-D convolution (", axes, " spatial axes here)");
    COS_CHECK(p.size(repeated) == 0, ConfigError, where, "give either ", repeated, " or ", h,
              "/", w, ", not both");
    *out = {static_cast<int>(p.number_or(h, 0)), static_cast<int>(p.number_or(w, 0))};
    return true;
  };
  ConvSpatialParams g;
  if (!pair_2d("kernel_size", "kernel_h", "kernel_w", &g.kernel)) {
    COS_CHECK(p.size("kernel_size") > 0, ConfigError, where,
              "convolution_param needs kernel_size (or kernel_h and kernel_w)");
    g.kernel = per_axis("kernel_size", 0);
  }
  if (!pair_2d("pad", "pad_h", "pad_w", &g.pad)) g.pad = per_axis("pad", 0);
  if (!pair_2d("stride", "stride_h", "stride_w", &g.stride)) g.stride = per_axis("stride", 1);
  g.dilation = per_axis("dilation", 1);
  for (int a = 0; a < axes; ++a) {
    COS_CHECK(g.kernel[a] > 0, ConfigError, where,
              "kernel size must be positive on every axis (axis ", a, " has ", g.kernel[a], ")");
    COS_CHECK(g.stride[a] > 0, ConfigError, where, "stride must be positive (axis ", a, " has ",
              g.stride[a], ")");
    COS_CHECK(g.dilation[a] > 0, ConfigError, where, "dilation must be positive (axis ", a,
              " has ", g.dilation[a], ")");
    COS_CHECK(g.pad[a] >= 0, ConfigError, where, "pad must not be negative (axis ", a, ")");
  }
  return g;
}

void BaseConvolutionLayer::ParseGeometry(const Params& p) {
  const int axes = num_spatial_axes_;
  ConvSpatialParams g = ParseConvSpatialParams(p, axes, where());
  kernel_ = std::move(g.kernel);
  pad_ = std::move(g.pad);
  stride_ = std::move(g.stride);
  dilation_ = std::move(g.dilation);
  is_1x1_ = true;
  for (int a = 0; a < axes; ++a) {
    is_1x1_ = is_1x1_ && kernel_[a] == 1 && stride_[a] == 1 && pad_[a] == 0;
  }
}

void BaseConvolutionLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("convolution_param");
  force_nd_im2col_ = p.flag("force_nd_im2col");
  channel_axis_ = bottom[0]->CanonicalAxis(p.integer("axis"));
  num_spatial_axes_ = bottom[0]->num_axes() - channel_axis_ - 1;
  COS_LAYER_CHECK(num_spatial_axes_ >= 1, ShapeError, "bottom ", bottom[0]->shape_string(),
                  " has no spatial axis after the channel axis ", channel_axis_);
  COS_LAYER_CHECK(num_spatial_axes_ <= kMaxConvAxes, ConfigError, "at most ", kMaxConvAxes,
                  " spatial axes, got ", num_spatial_axes_);
  ParseGeometry(p);
  channels_ = bottom[0]->shape(channel_axis_);
  num_output_ = p.integer("num_output");
  group_ = p.integer("group");
  bias_term_ = p.flag("bias_term");
  COS_LAYER_CHECK(num_output_ > 0, ConfigError, "convolution_param.num_output must be positive");
  COS_LAYER_CHECK(group_ > 0, ConfigError, "convolution_param.group must be positive");
  COS_LAYER_CHECK(channels_ % group_ == 0, ConfigError, "input channels (", channels_,
                  ") must be divisible by group (", group_, ")");
  COS_LAYER_CHECK(num_output_ % group_ == 0, ConfigError, "num_output (", num_output_,
                  ") must be divisible by group (", group_, ")");
  conv_out_channels_ = reverse_dimensions() ? channels_ : num_output_;
  conv_in_channels_ = reverse_dimensions() ? num_output_ : channels_;
  std::vector<int> weight_shape = {conv_out_channels_, conv_in_channels_ / group_};
  weight_shape.insert(weight_shape.end(), kernel_.begin(), kernel_.end());
  CheckedCount(weight_shape, where(), "weight count");
  auto weight = std::make_shared<Tensor>(weight_shape);
  Fill(p.child("weight_filler"), weight.get(), where() + "weight_filler: ");
  blobs_ = {weight};
  if (bias_term_) {
    auto bias = std::make_shared<Tensor>(std::vector<int>{num_output_});
    Fill(p.child("bias_filler"), bias.get(), where() + "bias_filler: ");
    blobs_.push_back(bias);
  }
}

void BaseConvolutionLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& first = *bottom[0];
  const int first_spatial = channel_axis_ + 1;
  COS_LAYER_CHECK(first.num_axes() == first_spatial + num_spatial_axes_, ShapeError, "bottom ",
                  first.shape_string(), " must keep ", first_spatial + num_spatial_axes_,
                  " axes (set up with ", num_spatial_axes_, " spatial axes)");
  COS_LAYER_CHECK(first.shape(channel_axis_) == channels_, ShapeError, "bottom ",
                  first.shape_string(), " has ", first.shape(channel_axis_),
                  " channels but the weights expect ", channels_);
  for (size_t i = 1; i < bottom.size(); ++i) {
    COS_LAYER_CHECK(bottom[i]->shape() == first.shape(), ShapeError, "all bottoms must have the same shape: bottom ",
                    i, " is ", bottom[i]->shape_string(), ", bottom 0 is ", first.shape_string());
  }
  num_ = static_cast<int>(first.count(0, channel_axis_));
  std::vector<int> in(first.shape().begin() + first_spatial, first.shape().end());
  std::vector<int64_t> out(num_spatial_axes_);
  const std::string prefix = where();
  for (int a = 0; a < num_spatial_axes_; ++a) {
    // In 64-bit and checked: the dilated kernel and the padded input must fit int (the
    // unfolding's index arithmetic), whatever the prototxt says.
    CheckedAdd(CheckedMul(dilation_[a], kernel_[a] - 1, prefix, "dilated kernel extent"), 1,
               prefix, "dilated kernel extent");
    CheckedAdd(in[a], 2 * static_cast<int64_t>(pad_[a]), prefix, "padded input extent");
    out[a] = OutputExtent(a, in[a]);
    COS_LAYER_CHECK(out[a] <= kMaxElements, ConfigError, "output extent ", out[a],
                    " along spatial axis ", a, " is beyond the int32 limit");
    COS_LAYER_CHECK(out[a] > 0, ShapeError, "the kernel (extent ", dilation_[a] * (kernel_[a] - 1L) + 1,
                    ") does not fit the padded input (", in[a], " + 2·", pad_[a],
                    ") along spatial axis ", a, " of bottom ", first.shape_string());
  }
  std::vector<int> top_shape(first.shape().begin(), first.shape().begin() + channel_axis_);
  top_shape.push_back(num_output_);
  top_shape.insert(top_shape.end(), out.begin(), out.end());
  CheckedCount(top_shape, prefix, "top count");
  for (Tensor* t : top) t->Reshape(top_shape);

  const std::vector<int> out_int(out.begin(), out.end());
  geom_.channels = conv_in_channels_ / group_;  // unfolded one group at a time
  geom_.image = reverse_dimensions() ? out_int : in;
  geom_.output = reverse_dimensions() ? in : out_int;
  geom_.kernel = kernel_;
  geom_.pad = pad_;
  geom_.stride = stride_;
  geom_.dilation = dilation_;
  kernel_dim_ = static_cast<long>(conv_in_channels_ / group_) * geom_.kernel_size();
  bottom_dim_ = first.count(first_spatial - 1);
  top_dim_ = top[0]->count(first_spatial - 1);
  CheckScratchSizes();
  PlanProducts();
}

int64_t ConvolutionLayer::OutputExtent(int a, int64_t in) const {
  return ConvOutputExtent(in, kernel_[a], pad_[a], stride_[a], dilation_[a]);
}

int64_t DeconvolutionLayer::OutputExtent(int a, int64_t in) const {
  return static_cast<int64_t>(stride_[a]) * (in - 1) + static_cast<int64_t>(dilation_[a]) * (kernel_[a] - 1) +
         1 - 2 * static_cast<int64_t>(pad_[a]);
}

template <typename Fn>
void BaseConvolutionLayer::ForEachImage(int uses, bool accumulate_weights, bool accumulate_bias,
                                        Fn fn) {
  const int threads = std::max(1, std::min(num_threads(), num_));
  const long M = conv_out_channels_ / group_, K = kernel_dim_, P = padded_out_;
  if (static_cast<int>(workspaces_.size()) < threads) workspaces_.resize(threads);
  // Every buffer the images' products use is sized here: nothing may allocate in the region.
  for (int t = 0; t < threads; ++t) SizeWorkspace(uses, workspaces_[t]);
  for (int t = 0; t < threads; ++t) {
    if (accumulate_weights) workspaces_[t].weight_grad.assign(group_ * K * P, 0.0f);
    if (accumulate_bias) workspaces_[t].bias_grad.assign(num_output_, 0.0);
  }
  if (threads == 1) {
    for (int n = 0; n < num_; ++n) fn(n, workspaces_[0]);
  } else {
#pragma omp parallel num_threads(threads)
    {
      Workspace& ws = workspaces_[ThreadId()];
#pragma omp for schedule(static)
      for (int n = 0; n < num_; ++n) fn(n, ws);
    }
  }
  if (accumulate_bias) {
    float* bias_diff = blobs_[1]->mutable_diff();
    for (int o = 0; o < num_output_; ++o) {
      double sum = workspaces_[0].bias_grad[o];
      for (int t = 1; t < threads; ++t) sum += workspaces_[t].bias_grad[o];
      bias_diff[o] += static_cast<float>(sum);
    }
  }
  if (!accumulate_weights) return;
  // Each group's gradient was accumulated transposed, (K × P); add it as (M/g × K).
  float* sum = workspaces_[0].weight_grad.data();
  for (int t = 1; t < threads; ++t) {
    axpy(group_ * K * P, 1.0f, workspaces_[t].weight_grad.data(), sum);
  }
  float* weight_diff = blobs_[0]->mutable_diff();
  for (int g = 0; g < group_; ++g) {
    const float* from = sum + g * K * P;
    float* to = weight_diff + g * M * K;
    for (long m = 0; m < M; ++m) {
      for (long k = 0; k < K; ++k) to[m * K + k] += from[k * P + m];
    }
  }
}

// ---------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------

void ConvolutionLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* bias = bias_term_ ? blobs_[1]->data() : nullptr;
  PackWeights(true, false);
  for (size_t i = 0; i < bottom.size(); ++i) {
    const float* x = bottom[i]->data();
    float* y = top[i]->mutable_data();
    ForEachImage(kUsesForward, false, false, [&](int n, Workspace& ws) {
      ForwardGemm(x + n * bottom_dim_, y + n * top_dim_, bias, ws);
    });
  }
}

void ConvolutionLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                    const Tensors& bottom) {
  const bool weight_grad = param_propagate_down(0);
  bool any_data_grad = false;
  for (size_t i = 0; i < top.size(); ++i) any_data_grad = any_data_grad || propagate_down[i];
  PackWeights(false, any_data_grad);
  const bool bias_grad = bias_term_ && param_propagate_down(1);
  for (size_t i = 0; i < top.size(); ++i) {
    const float* dy = top[i]->diff();
    const bool data_grad = propagate_down[i];
    if (!weight_grad && !data_grad && !bias_grad) continue;
    const float* x = bottom[i]->data();
    float* dx = data_grad ? bottom[i]->mutable_diff() : nullptr;
    const int uses = (weight_grad ? kUsesWeights : 0) | (data_grad ? kUsesBackward : 0);
    ForEachImage(uses, weight_grad, bias_grad, [&](int n, Workspace& ws) {
      if (bias_grad && !weight_grad) BiasGrad(dy + n * top_dim_, ws);
      if (weight_grad) WeightGemm(x + n * bottom_dim_, dy + n * top_dim_, bias_grad, ws);
      if (data_grad) BackwardGemm(dy + n * top_dim_, dx + n * bottom_dim_, nullptr, ws);
    });
  }
}

// ---------------------------------------------------------------------------------------
// Deconvolution: the same primitives with input and output exchanged
// ---------------------------------------------------------------------------------------

void DeconvolutionLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* bias = bias_term_ ? blobs_[1]->data() : nullptr;
  PackWeights(false, true);
  for (size_t i = 0; i < bottom.size(); ++i) {
    const float* x = bottom[i]->data();
    float* y = top[i]->mutable_data();
    ForEachImage(kUsesBackward, false, false, [&](int n, Workspace& ws) {
      BackwardGemm(x + n * bottom_dim_, y + n * top_dim_, bias, ws);
    });
  }
}

void DeconvolutionLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                      const Tensors& bottom) {
  const bool weight_grad = param_propagate_down(0);
  bool any_data_grad = false;
  for (size_t i = 0; i < top.size(); ++i) any_data_grad = any_data_grad || propagate_down[i];
  PackWeights(any_data_grad, false);
  const bool bias_grad = bias_term_ && param_propagate_down(1);
  for (size_t i = 0; i < top.size(); ++i) {
    const float* dy = top[i]->diff();
    const bool data_grad = propagate_down[i];
    if (!weight_grad && !data_grad && !bias_grad) continue;
    const float* x = bottom[i]->data();
    float* dx = data_grad ? bottom[i]->mutable_diff() : nullptr;
    const int uses = (weight_grad ? kUsesWeights : 0) | (data_grad ? kUsesForward : 0);
    ForEachImage(uses, weight_grad, bias_grad, [&](int n, Workspace& ws) {
      if (bias_grad) BiasGrad(dy + n * top_dim_, ws);
      if (weight_grad) WeightGemm(dy + n * top_dim_, x + n * bottom_dim_, false, ws);
      if (data_grad) ForwardGemm(dy + n * top_dim_, dx + n * bottom_dim_, nullptr, ws);
    });
  }
}

}  // namespace caffeonspark
