// Pooling (pooling_param), docs/CAFFE.md §2.2. Bottom (N, C, H, W) only; top (N, C, PH, PW).
//
// Shape: PH = ceil((H + 2·pad_h − kernel_h) / stride_h) + 1 (round_mode CEIL, the default;
// FLOOR uses floor); then, when any pad is non-zero, a window that would start at or past
// H + pad_h is dropped: if (PH − 1)·stride_h ≥ H + pad_h, PH −= 1 (same for W).
// MAX: window rows [ph·stride − pad, +kernel) clipped to the image (padding never wins);
// the first maximum in row-major order wins (strict >); an optional 2nd top receives the
// argmax index h·W + w inside the channel plane, as float; backward routes dy there.
// AVE: divisor = window area clipped to [−pad, H + pad) (zero padding counts, overhang past
// the padded edge does not); the sum runs over the part inside the image; backward spreads
// dy / divisor over that part.
// STOCHASTIC (GPU-only in Caffe, run here on the CPU with the same rule; no padding allowed):
// windows [ph·stride, min(ph·stride + kernel, H)) (same for W). TRAIN: with u uniform in
// [0, 1] from the engine RNG (core/rng.h, one draw per output in top order) and S = Σ x over
// the window in row-major order, the output is the first element whose running sum reaches
// u·S, so an element is drawn with probability x / S (inputs are expected >= 0); its index
// h·W + w is kept and backward routes dy there. TEST: y = Σ x² / (FLT_MIN + Σ x) (0 for an
// all-zero window); TEST has no backward (Caffe's would route dy to stale indices), so a
// backward pass in TEST is a ConfigError.
// Parameters: pool (MAX), kernel_size or kernel_h + kernel_w, pad (0) or pad_h/pad_w,
// stride (1) or stride_h/stride_w, global_pooling (false: kernel = H×W, needs pad 0 and
// stride 1), round_mode (CEIL). pad must be smaller than the kernel.
// Planes (n, c) are independent and spread over OpenMP threads. Output columns whose window
// lies inside the image horizontally run 16 at a time in vector lanes (no clipping), each lane
// repeating the per-window loop's compares/adds in row-major order: same values, ties and
// argmax as the per-window loop the edge columns keep. AVE backward sums the shares of one
// output row into a line, then adds it to the rows the windows cover.
// Tests: tests/layers/test_pooling.py.
#pragma once

#include <cstdint>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class PoolingLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Pooling"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int MinTopBlobs() const override { return 1; }
  int MaxTopBlobs() const override;  // 2 for MAX (argmax top), else 1
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  enum class Method { kMax, kAve, kStochastic };
  // Window of output (ph, pw) along one axis: [start, end) before clipping to the image.
  struct Window { int start, end; };
  Window Span(int out_index, int axis) const;
  // One output row of one plane: src/y/argmax point at the plane's input, the row's outputs
  // and the row's argmax entries (nullptr for AVE).
  void ForwardRow(const float* src, int ph, float* y, int* argmax) const;
  void BackwardAveRow(const float* dy, int ph, float* dst, float* line) const;
  void PlanTail();  // sizes tail_ for the current shape (Reshape)
  void ForwardStochastic(const float* x, float* y);

  Method method_ = Method::kMax;
  bool global_ = false, ceil_mode_ = true;
  int kernel_[2] = {0, 0}, pad_[2] = {0, 0}, stride_[2] = {1, 1};
  int num_ = 0, channels_ = 0, height_ = 0, width_ = 0, pooled_h_ = 0, pooled_w_ = 0;
  int interior_lo_ = 0, interior_hi_ = 0;  // output columns with unclipped windows
  std::vector<float> tail_;  // zero-padded copy of the last tail_planes_ planes (Forward)
  int64_t tail_planes_ = 0;
  // MAX: index into the bottom plane per top element (-1: empty); STOCHASTIC TRAIN: the
  // sampled element's index.
  std::vector<int> argmax_;
  std::vector<float> uniforms_;  // STOCHASTIC TRAIN: one draw per top element
};

}  // namespace caffeonspark
