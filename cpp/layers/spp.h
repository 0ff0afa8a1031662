// SPP: spatial pyramid pooling (spp_param), built from Pooling layers (cpp/layers/pooling.h).
//
// "SPP": bottom (N, C, H, W). Level l = 0 .. pyramid_height−1 pools into b = 2^l bins per
// axis with kernel k = ceil(H / b), pad = (k·b − H + 1) / 2 (integer division), stride = k
// (same rule for W), method spp_param.pool (MAX; AVE; STOCHASTIC) and Pooling's shape rule
// (docs/CAFFE.md §2.2), so a level gives (N, C, PH_l, PW_l), normally b × b. With
// pyramid_height 1 the top is that single level's output (N, C, PH_0, PW_0); otherwise each
// level is flattened to (N, C·PH_l·PW_l) and the levels are concatenated along axis 1 in level
// order: top (N, Σ_l C·PH_l·PW_l), row n = [level 0 of item n, level 1 of item n, ...].
// Backward sums the levels' gradients. pyramid_height is required (>= 1); an input so small
// that a level's pad reaches its kernel is a ConfigError (Caffe's Pooling check). The levels
// are rebuilt whenever H or W changes.
// Tests: tests/layers/test_spp.py.
#pragma once

#include <memory>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class SPPLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "SPP"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // The Pooling layer of level l for an H × W input.
  std::unique_ptr<Layer> MakeLevel(int level, int height, int width) const;

  int pyramid_height_ = 0;
  std::string pool_;
  int height_ = -1, width_ = -1;
  std::vector<std::unique_ptr<Layer>> levels_;
  std::vector<std::unique_ptr<Tensor>> level_tops_;
  std::vector<int64_t> level_dims_;  // C·PH_l·PW_l
  Tensor split_;  // shares bottom's data; its diff receives one level's gradient at a time
};

}  // namespace caffeonspark
