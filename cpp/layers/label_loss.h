// Losses over class labels (loss layers: scalar top 0, loss weight 1 by default; the label
// input, a float blob cast to int, takes no gradient: asking for one is a ConfigError).
//
// "MultinomialLogisticLoss": bottoms probabilities p (N, ...) with dim = count / N classes,
//   labels (N) (or (N, 1, 1, 1)). loss = −Σ_n log(max(p[n, l_n], 1e-20)) / N;
//   dp[n, l_n] = −loss_weight / (N · max(p[n, l_n], 1e-20)), 0 elsewhere.
// "InfogainLoss" (infogain_loss_param: source, axis (1); loss_param): scores x with the classes
//   on `axis` (K of them; outer = count before it, inner = count after), labels (outer·inner),
//   and the infogain matrix H (K × K, any shape of K² values) from a third bottom or from the
//   .binaryproto `source` (read by python/caffeonspark/engine.py). p = softmax(x) along axis;
//   loss = −Σ_{positions not ignored} Σ_k H[l, k]·log(max(p_k, 1e-20)) / norm, norm by
//   loss_param.normalization (VALID default; the deprecated `normalize` is refused);
//   dx_k = (p_k·Σ_j H[l, j] − H[l, k])·loss_weight / norm, 0 at ignored positions. An optional
//   second top receives p (then give two loss_weight values). H takes no gradient.
// "HingeLoss" (hinge_loss_param.norm: L1 default, L2): scores x (N, dim = count / N), labels
//   (N). With t = +1 at the label and −1 elsewhere, d = max(0, 1 − t·x):
//   L1: loss = Σ d / N, dx = −t·sign(d)·loss_weight / N;
//   L2: loss = Σ d² / N, dx = −2·t·d·loss_weight / N.
// Labels outside [0, classes) are a ShapeError naming the layer.
// Tests: tests/layers/test_label_loss.py.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/distance_loss.h"
#include "layers/softmax.h"

namespace caffeonspark {

// Labels of an (N, dim) loss: checks shapes, then reads them as ints in [0, dim).
class LabelLossBase : public LossLayerBase {
 public:
  using LossLayerBase::LossLayerBase;
  int ExactNumBottomBlobs() const override { return 2; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index == 0; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  // Fills labels_ from bottom[1], each checked against [0, dim_).
  void ReadLabels(const Tensor& labels);

  int64_t num_ = 0, dim_ = 0;
  std::vector<int> labels_;
};

class MultinomialLogisticLossLayer : public LabelLossBase {
 public:
  using LabelLossBase::LabelLossBase;
  const char* type() const override { return "MultinomialLogisticLoss"; }

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;
};

class HingeLossLayer : public LabelLossBase {
 public:
  using LabelLossBase::LabelLossBase;
  const char* type() const override { return "HingeLoss"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool l2_ = false;
  std::vector<float> margin_;  // d = max(0, 1 − t·x), per element
};

class InfogainLossLayer : public LossLayerBase {
 public:
  using LossLayerBase::LossLayerBase;
  const char* type() const override { return "InfogainLoss"; }
  int ExactNumTopBlobs() const override { return -1; }
  int MinTopBlobs() const override { return 1; }
  int MaxTopBlobs() const override { return 2; }
  int MinBottomBlobs() const override { return 2; }
  int MaxBottomBlobs() const override { return 3; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index == 0; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  const float* Matrix(const Tensors& bottom) const;
  // Reads and checks the labels; returns the number of non-ignored positions.
  int64_t ReadLabels(const Tensor& labels);

  std::unique_ptr<SoftmaxLayer> softmax_;
  Tensor prob_;
  std::vector<float> infogain_;  // H from `source` (two bottoms)
  std::vector<double> row_sums_;  // Σ_j H[l, j]
  std::vector<int> labels_;
  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
  std::string normalization_;
  int axis_ = 1;
  int64_t outer_ = 0, inner_ = 0, classes_ = 0;
};

}  // namespace caffeonspark
