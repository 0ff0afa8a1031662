// The per-image products of Convolution/Deconvolution (see convolution.h for the paths and
// when each is taken). Every product is a core/small_gemm call whose sums run over the kernel
// taps (or positions) in a fixed order, so an image's result never depends on threads.
// Tests: tests/layers/test_convolution.py (every path: test_convolution_gather_paths and
// test_deconvolution_gather_paths pick shapes for each; the older cases run the rest).
#include <algorithm>
#include <array>
#include <climits>

#include "core/checked_size.h"
#include "core/small_gemm.h"
#include "core/transpose.h"
#include "layers/convolution.h"

namespace caffeonspark {

namespace {

long RoundUp16(long n) { return (n + 15) / 16 * 16; }

}  // namespace

// The image (channels × H × W) zero-padded by (ph, pw) into the buffer; the image itself when
// there is no padding. The buffer keeps its zero border while the shape stays the same: only
// the interior is rewritten.
const float* BaseConvolutionLayer::Padded(const float* image, long channels, int H, int W,
                                          int ph, int pw, PaddedBuffer& buffer) {
  if (ph == 0 && pw == 0) return image;
  const long PH = H + 2L * ph, PW = W + 2L * pw;
  const std::array<long, 5> shape = {channels, H, W, ph, pw};
  if (buffer.shape != shape) {
    buffer.data.assign(channels * PH * PW, 0.0f);
    buffer.shape = shape;
  }
  for (long c = 0; c < channels; ++c) {
    for (int h = 0; h < H; ++h) {
      std::copy(image + (c * H + h) * W, image + (c * H + h + 1) * W,
                buffer.data.data() + (c * PH + h + ph) * PW + pw);
    }
  }
  return buffer.data.data();
}

void BaseConvolutionLayer::PlanProducts() {
  const int M = conv_out_channels_ / group_, C = conv_in_channels_ / group_;
  padded_out_ = RoundUp16(M);
  padded_in_ = RoundUp16(C);
  gather_forward_ = gather_weights_ = gather_data_ = false;
  if (num_spatial_axes_ != 2 || force_nd_im2col_ || is_1x1_) return;
  const int H = geom_.image[0], W = geom_.image[1], OH = geom_.output[0], OW = geom_.output[1];
  const long PH = H + 2L * pad_[0], PW = W + 2L * pad_[1];
  // Output channels are the vector axis of the forward and weight products. The weight
  // product gains from the gather even with ragged channel counts (LeNet: 1.3-1.4x im2col at
  // 20 and 50 outputs); the forward, which also pays a transposition, only with whole vectors.
  if (static_cast<long>(conv_in_channels_) * PH * PW < INT_MAX) {
    gather_forward_ = M % 16 == 0;
    gather_weights_ = true;
    taps_.clear();
    for (int c = 0; c < C; ++c) {
      for (int i = 0; i < kernel_[0]; ++i) {
        for (int j = 0; j < kernel_[1]; ++j) {
          taps_.push_back(static_cast<int>((c * PH + i * dilation_[0]) * PW + j * dilation_[1]));
        }
      }
    }
    positions_.clear();
    for (int oh = 0; oh < OH; ++oh) {
      for (int ow = 0; ow < OW; ++ow) {
        positions_.push_back(static_cast<int>(oh * stride_[0] * PW + ow * stride_[1]));
      }
    }
  }
  // The data gradient as a stride-1 correlation: dx[c, h, w] = Σ_{o, i, j} W[o, c, k−1−i,
  // k−1−j] · dy_pad[o, h + i·d, w + j·d], dy padded by d·(k−1) − pad on each side.
  grad_pad_ = {dilation_[0] * (kernel_[0] - 1) - pad_[0], dilation_[1] * (kernel_[1] - 1) - pad_[1]};
  const long GH = OH + 2L * grad_pad_[0], GW = OW + 2L * grad_pad_[1];
  if (stride_[0] == 1 && stride_[1] == 1 && grad_pad_[0] >= 0 && grad_pad_[1] >= 0 &&
      C % 16 == 0 && static_cast<long>(conv_out_channels_) * GH * GW < INT_MAX) {
    gather_data_ = true;
    data_taps_.clear();
    for (int o = 0; o < M; ++o) {
      for (int i = 0; i < kernel_[0]; ++i) {
        for (int j = 0; j < kernel_[1]; ++j) {
          data_taps_.push_back(static_cast<int>((o * GH + i * dilation_[0]) * GW + j * dilation_[1]));
        }
      }
    }
    data_positions_.clear();
    for (int h = 0; h < H; ++h) {
      for (int w = 0; w < W; ++w) data_positions_.push_back(static_cast<int>(h * GW + w));
    }
  }
}

void BaseConvolutionLayer::CheckScratchSizes() const {
  const std::string prefix = where();
  const int64_t M = conv_out_channels_ / group_, S = geom_.output_size(), image = geom_.image_size();
  const int64_t P = RoundUp16(M), Q = RoundUp16(conv_in_channels_ / group_);
  const int64_t K = CheckedMul(conv_in_channels_ / group_, geom_.kernel_size(), prefix,
                               "kernel dimension (C/group · ∏kernel)");
  CheckedMul(K, S, prefix, "im2col column buffer (K · ∏output)");
  CheckedMul(group_, CheckedMul(S, P, prefix, "transposed output gradient"), prefix,
             "transposed output gradient");
  CheckedMul(group_, CheckedMul(K, P, prefix, "weight gradient"), prefix, "weight gradient");
  CheckedMul(image, Q, prefix, "data-gradient product");
  CheckedMul(group_, CheckedMul(M * geom_.kernel_size(), Q, prefix, "packed weights"), prefix,
             "packed weights");
  if (num_spatial_axes_ == 2) {
    const int64_t PH = geom_.image[0] + 2L * pad_[0], PW = geom_.image[1] + 2L * pad_[1];
    CheckedMul(conv_in_channels_, CheckedMul(PH, PW, prefix, "padded input"), prefix,
               "padded input");
  }
}

void BaseConvolutionLayer::SizeWorkspace(int uses, Workspace& ws) const {
  const long K = kernel_dim_, S = geom_.output_size();
  const long image = geom_.image_size(), P = padded_out_, Q = padded_in_;
  const bool forward = uses & kUsesForward, backward = uses & kUsesBackward;
  const bool weights = uses & kUsesWeights;
  const bool unfolds = !is_1x1_ && ((forward && !gather_forward_) ||
                                    (backward && !gather_data_) || (weights && !gather_weights_));
  if (unfolds) {
    ws.col.resize(K * S);
    ws.unfold.resize(Im2colScratchSize(geom_));
  }
  long product = 0;
  if (forward && gather_forward_) product = S * P;
  if (backward && gather_data_) product = std::max(product, image * Q);
  ws.product_t.reserve(product);
  if (weights) ws.grad_t.resize(group_ * S * P);
  const bool padded = pad_.size() == 2 && (pad_[0] != 0 || pad_[1] != 0);
  if (padded && ((forward && gather_forward_) || (weights && gather_weights_))) {
    ws.padded.data.reserve(conv_in_channels_ * (geom_.image[0] + 2L * pad_[0]) *
                           (geom_.image[1] + 2L * pad_[1]));
  }
  if (backward && gather_data_ && (grad_pad_[0] != 0 || grad_pad_[1] != 0)) {
    ws.padded_grad.data.reserve(conv_out_channels_ * (geom_.output[0] + 2L * grad_pad_[0]) *
                                (geom_.output[1] + 2L * grad_pad_[1]));
  }
}

void BaseConvolutionLayer::PackWeights(bool forward, bool data) {
  const float* weights = blobs_[0]->data();
  const long M = conv_out_channels_ / group_, C = conv_in_channels_ / group_, K = kernel_dim_;
  const long taps = geom_.kernel_size(), P = padded_out_, Q = padded_in_;
  if (forward && gather_forward_) {
    packed_forward_.assign(group_ * K * P, 0.0f);
    for (long g = 0; g < group_; ++g) {
      for (long m = 0; m < M; ++m) {
        for (long k = 0; k < K; ++k) packed_forward_[(g * K + k) * P + m] = weights[(g * M + m) * K + k];
      }
    }
  }
  if (data && gather_data_) {
    // Row (o, i, j) of group g holds W[g·M + o, c, k−1−i, k−1−j] for every c.
    packed_data_.assign(group_ * M * taps * Q, 0.0f);
    for (long g = 0; g < group_; ++g) {
      for (long o = 0; o < M; ++o) {
        for (long c = 0; c < C; ++c) {
          const float* w = weights + ((g * M + o) * C + c) * taps;
          for (long t = 0; t < taps; ++t) {
            packed_data_[((g * M + o) * taps + (taps - 1 - t)) * Q + c] = w[t];
          }
        }
      }
    }
  }
}

void BaseConvolutionLayer::ForwardGemm(const float* input, float* output, const float* bias,
                                       Workspace& ws) const {
  const int M = conv_out_channels_ / group_, K = static_cast<int>(kernel_dim_);
  const int C = conv_in_channels_ / group_, S = static_cast<int>(geom_.output_size());
  const long image = geom_.image_size();
  if (gather_forward_) {
    const float* x = Padded(input, conv_in_channels_, geom_.image[0], geom_.image[1], pad_[0],
                            pad_[1], ws.padded);
    const long padded_image = (geom_.image[0] + 2L * pad_[0]) * (geom_.image[1] + 2L * pad_[1]);
    const long P = padded_out_;
    ws.product_t.resize(S * P);
    for (int g = 0; g < group_; ++g) {
      small_gemm_gather(S, static_cast<int>(P), K, x + g * C * padded_image, positions_.data(),
                        taps_.data(), packed_forward_.data() + g * K * P, P, false,
                        ws.product_t.data(), P);
      transpose(ws.product_t.data(), P, S, M, output + static_cast<long>(g) * M * S, S,
                bias ? bias + g * M : nullptr);
    }
    return;
  }
  const float* weights = blobs_[0]->data();
  ws.col.resize(is_1x1_ ? 0 : K * S);
  for (int g = 0; g < group_; ++g) {
    const float* group_input = input + g * C * image;
    const float* columns = group_input;
    if (!is_1x1_) {
      if (num_spatial_axes_ == 2 && !force_nd_im2col_) {
        im2col_2d(group_input, geom_, ws.col.data(), ws.unfold.data());
      } else {
        im2col_nd(group_input, geom_, ws.col.data());
      }
      columns = ws.col.data();
    }
    small_gemm(M, S, K, weights + static_cast<long>(g) * M * K, K, 1, columns, S, false,
               output + static_cast<long>(g) * M * S, S);
  }
  if (bias) AddBias(output, bias);
}

void BaseConvolutionLayer::BackwardGemm(const float* output_grad, float* input_grad,
                                        const float* bias, Workspace& ws) const {
  const int M = conv_out_channels_ / group_, K = static_cast<int>(kernel_dim_);
  const int C = conv_in_channels_ / group_, S = static_cast<int>(geom_.output_size());
  const long image = geom_.image_size();
  if (gather_data_) {
    const int OH = geom_.output[0], OW = geom_.output[1];
    const float* dy = Padded(output_grad, conv_out_channels_, OH, OW, grad_pad_[0], grad_pad_[1],
                             ws.padded_grad);
    const long padded_grad = (OH + 2L * grad_pad_[0]) * (OW + 2L * grad_pad_[1]);
    const long Q = padded_in_, L = M * geom_.kernel_size();
    ws.product_t.resize(image * Q);
    for (int g = 0; g < group_; ++g) {
      small_gemm_gather(static_cast<int>(image), static_cast<int>(Q), static_cast<int>(L),
                        dy + g * M * padded_grad, data_positions_.data(), data_taps_.data(),
                        packed_data_.data() + g * L * Q, Q, false, ws.product_t.data(), Q);
      transpose(ws.product_t.data(), Q, static_cast<int>(image), C, input_grad + g * C * image,
                image, bias ? bias + g * C : nullptr);
    }
    return;
  }
  const float* weights = blobs_[0]->data();
  ws.col.resize(is_1x1_ ? 0 : K * S);
  for (int g = 0; g < group_; ++g) {
    float* group_grad = input_grad + g * C * image;
    float* columns = is_1x1_ ? group_grad : ws.col.data();
    // Wᵀ read in place: A(k, o) = W[o, k].
    small_gemm(K, S, M, weights + static_cast<long>(g) * M * K, 1, K,
               output_grad + static_cast<long>(g) * M * S, S, false, columns, S);
    if (is_1x1_) continue;
    if (num_spatial_axes_ == 2 && !force_nd_im2col_) {
      col2im_2d(columns, geom_, group_grad, ws.unfold.data());
    } else {
      col2im_nd(columns, geom_, group_grad);
    }
  }
  if (bias) AddBias(input_grad, bias);
}

void BaseConvolutionLayer::WeightGemm(const float* input, const float* output_grad, bool with_bias,
                                      Workspace& ws) const {
  const int M = conv_out_channels_ / group_, K = static_cast<int>(kernel_dim_);
  const int C = conv_in_channels_ / group_, S = static_cast<int>(geom_.output_size());
  const long image = geom_.image_size(), P = padded_out_;
  ws.grad_t.resize(group_ * S * P);
  for (int g = 0; g < group_; ++g) {
    float* grad_t = ws.grad_t.data() + g * S * P;  // output_gradᵀ, zero past column M
    transpose(output_grad + static_cast<long>(g) * M * S, S, M, S, grad_t, P, nullptr,
              with_bias ? ws.bias_grad.data() + g * M : nullptr);
    for (long s = 0; s < S && M < P; ++s) std::fill(grad_t + s * P + M, grad_t + (s + 1) * P, 0.0f);
  }
  if (gather_weights_) {
    const float* x = Padded(input, conv_in_channels_, geom_.image[0], geom_.image[1], pad_[0],
                            pad_[1], ws.padded);
    const long padded_image = (geom_.image[0] + 2L * pad_[0]) * (geom_.image[1] + 2L * pad_[1]);
    for (int g = 0; g < group_; ++g) {
      small_gemm_gather(K, static_cast<int>(P), S, x + g * C * padded_image, taps_.data(),
                        positions_.data(), ws.grad_t.data() + g * S * P, P, true,
                        ws.weight_grad.data() + g * K * P, P);
    }
    return;
  }
  ws.col.resize(is_1x1_ ? 0 : K * S);
  for (int g = 0; g < group_; ++g) {
    const float* group_input = input + g * C * image;
    const float* columns = group_input;
    if (!is_1x1_) {
      if (num_spatial_axes_ == 2 && !force_nd_im2col_) {
        im2col_2d(group_input, geom_, ws.col.data(), ws.unfold.data());
      } else {
        im2col_nd(group_input, geom_, ws.col.data());
      }
      columns = ws.col.data();
    }
    small_gemm(K, static_cast<int>(P), S, columns, S, 1, ws.grad_t.data() + g * S * P, P, true,
               ws.weight_grad.data() + g * K * P, P);
  }
}

void BaseConvolutionLayer::AddBias(float* output, const float* bias) const {
  const long spatial = top_dim_ / num_output_;
  for (int o = 0; o < num_output_; ++o) {
    float* row = output + o * spatial;
    const float b = bias[o];
    for (long s = 0; s < spatial; ++s) row[s] += b;
  }
}

void BaseConvolutionLayer::BiasGrad(const float* output_grad, Workspace& ws) const {
  const long spatial = top_dim_ / num_output_;
  for (int o = 0; o < num_output_; ++o) {
    const float* row = output_grad + o * spatial;
    double sum = ws.bias_grad[o];
#pragma omp simd reduction(+ : sum)
    for (long s = 0; s < spatial; ++s) sum += row[s];
    ws.bias_grad[o] = sum;
  }
}

}  // namespace caffeonspark
