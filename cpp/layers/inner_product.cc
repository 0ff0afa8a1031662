#include "layers/inner_product.h"

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/math.h"

namespace caffeonspark {

void InnerProductLayer::LayerSetUp(const Tensors& bottom, const Tensors&) {
  const Params& p = spec_.params.child("inner_product_param");
  N_ = p.integer("num_output");
  COS_LAYER_CHECK(N_ > 0, ConfigError, "inner_product_param.num_output must be positive");
  bias_term_ = p.flag("bias_term");
  transpose_ = p.flag("transpose");
  int axis = bottom[0]->CanonicalAxis(p.integer("axis"));
  const int64_t features = bottom[0]->count(axis);
  CheckedMul(features, N_, where(), "weight count (num_output · input features)");
  K_ = static_cast<int>(features);
  auto weight = std::make_shared<Tensor>(transpose_ ? std::vector<int>{K_, N_} : std::vector<int>{N_, K_});
  Fill(p.child("weight_filler"), weight.get(), where() + "weight_filler: ");
  blobs_ = {weight};
  if (bias_term_) {
    auto bias = std::make_shared<Tensor>(std::vector<int>{N_});
    Fill(p.child("bias_filler"), bias.get(), where() + "bias_filler: ");
    blobs_.push_back(bias);
  }
}

void InnerProductLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  int axis = bottom[0]->CanonicalAxis(spec_.params.child("inner_product_param").integer("axis"));
  COS_LAYER_CHECK(bottom[0]->count(axis) == K_, ShapeError, "input ", bottom[0]->shape_string(),
                  " has ", bottom[0]->count(axis), " features from axis ", axis, " but the weights expect ", K_);
  M_ = static_cast<int>(bottom[0]->count(0, axis));
  std::vector<int> shape(bottom[0]->shape().begin(), bottom[0]->shape().begin() + axis);
  shape.push_back(N_);
  CheckedCount(shape, where(), "top count");
  top[0]->Reshape(shape);
  if (bias_term_ && bias_multiplier_.count() != M_) {
    bias_multiplier_.Reshape({M_});
    fill(M_, 1.0f, bias_multiplier_.mutable_data());
  }
}

void InnerProductLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  gemm(false, !transpose_, M_, N_, K_, 1.0f, bottom[0]->data(), blobs_[0]->data(), 0.0f,
       top[0]->mutable_data());
  if (bias_term_) {
    gemm(false, false, M_, N_, 1, 1.0f, bias_multiplier_.data(), blobs_[1]->data(), 1.0f,
         top[0]->mutable_data());
  }
}

void InnerProductLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                     const Tensors& bottom) {
  const float* dy = top[0]->diff();
  if (param_propagate_down(0)) {
    if (transpose_) {
      gemm(true, false, K_, N_, M_, 1.0f, bottom[0]->data(), dy, 1.0f, blobs_[0]->mutable_diff());
    } else {
      gemm(true, false, N_, K_, M_, 1.0f, dy, bottom[0]->data(), 1.0f, blobs_[0]->mutable_diff());
    }
  }
  if (bias_term_ && param_propagate_down(1)) {
    gemv(true, M_, N_, 1.0f, dy, bias_multiplier_.data(), 1.0f, blobs_[1]->mutable_diff());
  }
  if (propagate_down[0]) {
    gemm(false, transpose_, M_, K_, N_, 1.0f, dy, blobs_[0]->data(), 0.0f, bottom[0]->mutable_diff());
  }
}

}  // namespace caffeonspark
