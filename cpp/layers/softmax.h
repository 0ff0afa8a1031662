// Softmax along `axis` (1), independent per (outer, inner) position; and SoftmaxWithLoss:
// loss = -sum log(max(p_label, FLT_MIN)) / norm over non-ignored positions, norm by
// loss_param.normalization (FULL, VALID default, BATCH_SIZE, NONE; max(1, norm)); the
// deprecated `normalize` decides only when normalization is unset (Python passes
// `normalization_set`). Gradient (p - onehot) * w / norm. Tests: tests/layers/test_softmax.py.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class SoftmaxLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Softmax"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int axis_ = 1;
  int64_t outer_ = 0, channels_ = 0, inner_ = 0;
};

class SoftmaxWithLossLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "SoftmaxWithLoss"; }
  int ExactNumBottomBlobs() const override { return 2; }
  int MinTopBlobs() const override { return 1; }
  int MaxTopBlobs() const override { return 2; }
  bool AutoTopBlobs() const override { return true; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index != 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  float DefaultLossWeight(int top_index) const override { return top_index == 0 ? 1.0f : 0.0f; }
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float Normalizer(int64_t valid_count) const;

  std::unique_ptr<SoftmaxLayer> softmax_;
  Tensor prob_;
  int axis_ = 1;
  int64_t outer_ = 0, inner_ = 0;
  bool has_ignore_label_ = false;
  int ignore_label_ = -1;
  std::string normalization_ = "VALID";
};

// Softmax over `channels` entries spaced `inner` apart, for each outer x inner position.
void SoftmaxForward(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner);

}  // namespace caffeonspark
