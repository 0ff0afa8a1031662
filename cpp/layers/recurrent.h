// Caffe's recurrent layers, computed directly (docs/CAFFE.md §2.7) rather than by unrolling
// a net: one GEMM projects the inputs of all T steps, then a loop over time applies the
// recurrent GEMM and the per-element step (cpp/layers/recurrent_math.h).
//
// LSTMUnit: bottoms c_prev (1, N, H), gate pre-activations (1, N, 4H) in the order i, f, o, g,
//   cont (1, N); tops c (1, N, H), h (1, N, H). No gradient to cont.
// LSTM and RNN (recurrent_param: num_output H, weight_filler, bias_filler, expose_hidden):
//   bottoms x (T, N, ...) with D = count from axis 2, cont (T, N), optionally a static input
//   (N, ...) with Ds = count from axis 1, then with expose_hidden the initial states (1, N, H)
//   (LSTM: h0, c0; RNN: h0); tops (T, N, H) and with expose_hidden the final states
//   (LSTM: hT, cT; RNN: hT). Each step first multiplies the previous hidden state by cont_t:
//     LSTM: a_t = W_xc·x_t + b_c + W_hc·(cont_t·h_{t−1}) [+ W_xc_static·x_static];
//           (c_t, h_t) = LSTMUnit(c_{t−1}, a_t, cont_t); top = h.
//     RNN:  h_t = tanh(W_xh·x_t + b_h + W_hh·(cont_t·h_{t−1}) [+ W_xh_static·x_static]);
//           o_t = tanh(W_ho·h_t + b_o); top = o.
//   Blobs, in Caffe's order: LSTM W_xc (4H, D), b_c (4H), [W_xc_static (4H, Ds)], W_hc (4H, H);
//   RNN W_xh (H, D), b_h (H), [W_xh_static (H, Ds)], W_hh (H, H), W_ho (H, H), b_o (H).
//   Without expose_hidden the final states of one Forward are the initial states of the next
//   (zeros at first and whenever N changes); no gradient crosses that boundary.
//   T may change between calls (Caffe fixes it when the layer is set up). With it, the
//   gradient reaches the initial-state bottoms and flows from the final-state tops.
// Tests: tests/layers/test_recurrent.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class LSTMUnitLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "LSTMUnit"; }
  int ExactNumBottomBlobs() const override { return 3; }
  int ExactNumTopBlobs() const override { return 2; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index != 2; }
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  int N_ = 0, H_ = 0;
};

// What LSTM and RNN share: bottoms, blobs, the input projections, the carried state and the
// loop over time. A subclass supplies the step and the output.
class RecurrentLayer : public Layer {
 public:
  using Layer::Layer;
  int MinBottomBlobs() const override { return 2; }
  int MinTopBlobs() const override { return 1; }
  bool AllowForceBackward(int bottom_index) const override { return bottom_index != 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

  // States carried from step to step: 1 (h) or 2 (h, c); state 0 is always h.
  virtual int NumStates() const = 0;
  // Width of a step's pre-activation: 4H (LSTM) or H (RNN).
  virtual int GateWidth() const = 0;
  // Appends the subclass's own blobs after the shared ones (RNN: W_ho, b_o).
  virtual void AddBlobs(const Params& recurrent_param) {}
  virtual void ReshapeBuffers() {}
  // Computes every state at step t from pre_[t], the previous states and cont_t.
  virtual void StepForward(int t, const float* cont) = 0;
  // Fills the layer's first top from the hidden states.
  virtual void OutputForward(const Tensors& top) = 0;
  // The gradient reaching each h_t from the first top directly, (T, N, H); may add
  // parameter gradients of the output stage.
  virtual const float* OutputBackward(const Tensors& top) = 0;
  // On entry dstate_[s] holds the gradient of state s at step t from later steps, and
  // `dh` the hidden state's direct one. Writes d(pre-activation) into pre_[t] and, for
  // states other than h, the gradient of their value at t − 1 into dstate_[s].
  virtual void StepBackward(int t, const float* cont, const float* dh) = 0;

  float* At(Tensor& buffer, int t, int width) { return buffer.mutable_data() + int64_t(t) * N_ * width; }
  // State s before step t: the initial state for t = 0.
  const float* StateBefore(int s, int t) const;

  int T_ = 0, N_ = 0, H_ = 0, D_ = 0, Ds_ = 0;
  bool expose_hidden_ = false, static_input_ = false;
  int recurrent_weight_ = 2;  // index of W_hc / W_hh in blobs_
  std::vector<Tensor> states_;    // per state, (T, N, H): its value after each step
  std::vector<Tensor> initial_;   // per state, (N, H): the value before step 0
  std::vector<Tensor> carried_;   // per state, (N, H): the last Forward's final value
  std::vector<Tensor> dstate_;    // per state, (N, H): gradient flowing back in time
  Tensor pre_;                    // (T, N, G): pre-activations; their gradients in Backward
  Tensor hcont_;                  // (T, N, H): cont_t · h_{t−1}, the recurrent GEMM's input
  Tensor static_pre_;             // (N, G): W_static · x_static
  Tensor ones_;                   // (T·N): ones for bias sums

 private:
  void CheckShapes(const Tensors& bottom) const;
  int carried_n_ = -1;
};

class LSTMLayer : public RecurrentLayer {
 public:
  using RecurrentLayer::RecurrentLayer;
  const char* type() const override { return "LSTM"; }

 protected:
  int NumStates() const override { return 2; }
  int GateWidth() const override { return 4 * H_; }
  void ReshapeBuffers() override;
  void StepForward(int t, const float* cont) override;
  void OutputForward(const Tensors& top) override;
  const float* OutputBackward(const Tensors& top) override;
  void StepBackward(int t, const float* cont, const float* dh) override;

 private:
  Tensor gates_;  // (T, N, 4H): activated i, f (times cont), o, g
};

class RNNLayer : public RecurrentLayer {
 public:
  using RecurrentLayer::RecurrentLayer;
  const char* type() const override { return "RNN"; }

 protected:
  int NumStates() const override { return 1; }
  int GateWidth() const override { return H_; }
  void AddBlobs(const Params& recurrent_param) override;
  void ReshapeBuffers() override;
  void StepForward(int t, const float* cont) override;
  void OutputForward(const Tensors& top) override;
  const float* OutputBackward(const Tensors& top) override;
  void StepBackward(int t, const float* cont, const float* dh) override;

 private:
  Tensor output_;  // (T, N, H): o, kept for the gradient even if the top is changed in place
  Tensor dout_;    // (T, N, H): d(W_ho·h + b_o)
  Tensor dh_;      // (T, N, H): gradient of h_t through o_t
};

}  // namespace caffeonspark
