// LRN, local response normalisation (lrn_param), docs/CAFFE.md §2.3. Bottom and top (N, C, H, W).
//
// ACROSS_CHANNELS (default): s = k + (alpha / n) · Σ x² over channels c − (n−1)/2 … c + (n−1)/2
// (channels outside [0, C) count 0); y = x · s^(−beta);
//   dx = dy · s^(−beta) − (2·alpha·beta / n) · x · Σ_window(dy · y / s).
// WITHIN_CHANNEL: s = 1 + (alpha / n²) · Σ x² over the n×n window centred on the pixel (zero
// padding (n−1)/2, so the divisor is always n²); y = x · s^(−beta); k is ignored (Caffe builds
// this from Power/Pooling/Eltwise layers with the shift fixed at 1). Backward as above with
// the n×n window and alpha / n² in place of alpha / n.
// Parameters: local_size n (5, odd), alpha (1), beta (0.75), k (1), norm_region.
// Implemented directly (no internal net); s is kept from forward for backward.
// Tests: tests/layers/test_lrn.py.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "layers/layer.h"

namespace caffeonspark {

class LRNLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "LRN"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Σ of `values` over the local window of every element (channel window or n×n box),
  // into `out` (same shape as the bottom).
  void WindowSum(const float* values, float* out) const;

  bool across_ = true;
  int size_ = 5;
  float alpha_ = 1.0f, beta_ = 0.75f, k_ = 1.0f;
  int num_ = 0, channels_ = 0, height_ = 0, width_ = 0;
  Tensor scale_;       // s per element
  Tensor work_;        // x² (forward) or dy·y/s (backward)
  Tensor window_;      // window sums of work_ (backward)
};

}  // namespace caffeonspark
