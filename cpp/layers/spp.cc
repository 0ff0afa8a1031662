// SPP (rules in spp.h).
#include "layers/spp.h"

#include <cmath>
#include <string>

#include "core/math.h"
#include "layers/pooling.h"

namespace caffeonspark {

void SPPLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("spp_param");
  pyramid_height_ = p.size("pyramid_height") ? p.integer("pyramid_height") : 0;
  COS_LAYER_CHECK(pyramid_height_ >= 1, ConfigError,
                  "spp_param.pyramid_height must be given and at least 1, got ", pyramid_height_);
  COS_LAYER_CHECK(pyramid_height_ <= 31, ConfigError,
                  "spp_param.pyramid_height ", pyramid_height_, " asks for 2^",
                  pyramid_height_ - 1, " bins per axis");
  pool_ = p.str("pool");
  height_ = width_ = -1;
}

std::unique_ptr<Layer> SPPLayer::MakeLevel(int level, int height, int width) const {
  const int64_t bins = int64_t{1} << level;
  const int64_t in[2] = {height, width};
  int64_t kernel[2], pad[2];
  for (int a = 0; a < 2; ++a) {
    kernel[a] = (in[a] + bins - 1) / bins;
    pad[a] = (kernel[a] * bins - in[a] + 1) / 2;
    COS_LAYER_CHECK(pad[a] < kernel[a], ConfigError, "pyramid level ", level, " (", bins,
                    " bins) needs kernel ", kernel[a], " and pad ", pad[a], " on a ", height, "x",
                    width, " input; the pad must be smaller than the kernel (lower "
                    "pyramid_height or enlarge the input)");
  }
  auto pooling = std::make_shared<Params>();
  pooling->add("pool", pool_);
  pooling->add("kernel_h", static_cast<double>(kernel[0]));
  pooling->add("kernel_w", static_cast<double>(kernel[1]));
  pooling->add("pad_h", static_cast<double>(pad[0]));
  pooling->add("pad_w", static_cast<double>(pad[1]));
  pooling->add("stride_h", static_cast<double>(kernel[0]));
  pooling->add("stride_w", static_cast<double>(kernel[1]));
  LayerSpec spec;
  spec.name = spec_.name + "/level" + std::to_string(level);
  spec.type = "Pooling";
  spec.phase = spec_.phase;
  spec.where = spec_.where;
  spec.params.add("pooling_param", pooling);
  return std::make_unique<PoolingLayer>(spec);
}

void SPPLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  COS_LAYER_CHECK(x.num_axes() == 4, ShapeError, "bottom must have 4 axes (N, C, H, W), got ",
                  x.shape_string());
  COS_LAYER_CHECK(x.shape(2) > 0 && x.shape(3) > 0, ShapeError,
                  "input height and width must be positive, got ", x.shape_string());
  split_.ReshapeLike(x);
  split_.ShareData(x);
  Tensors split = {&split_};
  if (x.shape(2) != height_ || x.shape(3) != width_) {
    height_ = x.shape(2);
    width_ = x.shape(3);
    levels_.clear();
    level_tops_.clear();
    for (int l = 0; l < pyramid_height_; ++l) {
      levels_.push_back(MakeLevel(l, height_, width_));
      level_tops_.push_back(std::make_unique<Tensor>());
      levels_.back()->SetUp(split, {level_tops_.back().get()});
    }
  } else {
    for (int l = 0; l < pyramid_height_; ++l) levels_[l]->Reshape(split, {level_tops_[l].get()});
  }
  if (pyramid_height_ == 1) {
    top[0]->ReshapeLike(*level_tops_[0]);
    return;
  }
  level_dims_.assign(pyramid_height_, 0);
  int64_t total = 0;
  for (int l = 0; l < pyramid_height_; ++l) {
    level_dims_[l] = level_tops_[l]->count(1);
    total += level_dims_[l];
  }
  top[0]->Reshape({x.shape(0), static_cast<int>(total)});
}

void SPPLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  split_.ShareData(*bottom[0]);
  Tensors split = {&split_};
  if (pyramid_height_ == 1) {
    levels_[0]->Forward(split, top);
    return;
  }
  const int64_t items = bottom[0]->shape(0), row = top[0]->count(1);
  float* y = top[0]->mutable_data();
  int64_t offset = 0;
  for (int l = 0; l < pyramid_height_; ++l) {
    levels_[l]->Forward(split, {level_tops_[l].get()});
    const float* level = level_tops_[l]->data();
    const int64_t dim = level_dims_[l];
    for (int64_t n = 0; n < items; ++n) copy(dim, level + n * dim, y + n * row + offset);
    offset += dim;
  }
}

void SPPLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) {
  if (!propagate_down[0]) return;
  Tensors split = {&split_};
  float* dx = bottom[0]->mutable_diff();
  const int64_t count = bottom[0]->count();
  if (pyramid_height_ == 1) {
    levels_[0]->Backward(top, {true}, split);
    copy(count, split_.diff(), dx);
    return;
  }
  const int64_t items = bottom[0]->shape(0), row = top[0]->count(1);
  const float* dy = top[0]->diff();
  int64_t offset = 0;
  for (int l = 0; l < pyramid_height_; ++l) {
    const int64_t dim = level_dims_[l];
    float* level = level_tops_[l]->mutable_diff();
    for (int64_t n = 0; n < items; ++n) copy(dim, dy + n * row + offset, level + n * dim);
    offset += dim;
    levels_[l]->Backward({level_tops_[l].get()}, {true}, split);
    if (l == 0) {
      copy(count, split_.diff(), dx);
    } else {
      axpy(count, 1.0f, split_.diff(), dx);
    }
  }
}

}  // namespace caffeonspark
