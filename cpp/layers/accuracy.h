// Accuracy (accuracy_param: top_k 1, axis 1, ignore_label unset): a metric, not a loss.
// Bottoms: scores (outer, C, inner...) with C = shape(axis), labels (outer*inner values,
// cast to int). For each position whose label is not ignore_label: count the classes whose
// score is >= the true class's score (the true class itself excluded); the position is
// correct when that count < top_k, so ties count against. top[0] = correct / non-ignored
// positions (0 when none), shape (). Optional top[1] (C): per-class accuracy, the same ratio
// over the positions labelled with each class (0 for a class that never occurs).
// No gradient: AllowForceBackward is false for both bottoms, so force_backward nets never ask
// (Caffe would abort there); an explicit `propagate_down: true` raises ConfigError.
// Tests: tests/layers/test_accuracy.py.
#pragma once

#include "layers/layer.h"

namespace caffeonspark {

class AccuracyLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Accuracy"; }
  int ExactNumBottomBlobs() const override { return 2; }
  int MinTopBlobs() const override { return 1; }
  int MaxTopBlobs() const override { return 2; }
  bool AllowForceBackward(int) const override { return false; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int top_k_ = 1;
  int axis_ = 1;
  int64_t outer_ = 0, classes_ = 0, inner_ = 0;
  bool has_ignore_label_ = false;
  int ignore_label_ = 0;
};

}  // namespace caffeonspark
