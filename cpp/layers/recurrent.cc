#include "layers/recurrent.h"

#include <memory>

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/math.h"
#include "core/parallel.h"
#include "layers/recurrent_math.h"

namespace caffeonspark {

namespace {

// Work units of one LSTM unit element (five tanh and a dozen flops) for ParallelFor.
constexpr int64_t kLstmUnitWork = 8;
// One tanh and a few flops.
constexpr int64_t kTanhWork = 2;

std::string ShapeOf(int a, int b, int c) { return Msg("(", a, ", ", b, ", ", c, ")"); }

}  // namespace

// ---- LSTMUnit ----------------------------------------------------------------------------

void LSTMUnitLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& c_prev = *bottom[0];
  const Tensor& gates = *bottom[1];
  const Tensor& cont = *bottom[2];
  COS_LAYER_CHECK(c_prev.num_axes() == 3 && c_prev.shape(0) == 1, ShapeError,
                  "the previous cell state (bottom 0) must be (1, N, H), got ", c_prev.shape_string());
  N_ = c_prev.shape(1);
  H_ = c_prev.shape(2);
  COS_LAYER_CHECK(gates.num_axes() == 3 && gates.shape(0) == 1 && gates.shape(1) == N_ &&
                      int64_t(gates.shape(2)) == 4 * int64_t(H_),
                  ShapeError, "the gate input (bottom 1) must be (1, ", N_, ", ", 4 * int64_t(H_),
                  ") for a cell state ", c_prev.shape_string(), ", got ", gates.shape_string());
  COS_LAYER_CHECK(cont.num_axes() == 2 && cont.shape(0) == 1 && cont.shape(1) == N_, ShapeError,
                  "the continuation input (bottom 2) must be (1, ", N_, "), got ", cont.shape_string());
  top[0]->ReshapeLike(c_prev);
  top[1]->ReshapeLike(c_prev);
}

void LSTMUnitLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* c_prev = bottom[0]->data();
  const float* a = bottom[1]->data();
  const float* cont = bottom[2]->data();
  float* c = top[0]->mutable_data();
  float* h = top[1]->mutable_data();
  const int64_t H = H_;
  ParallelFor(int64_t(N_) * H, int64_t(N_) * H * kLstmUnitWork, [&](int64_t i) {
    const int64_t n = i / H, d = i % H;
    const float* an = a + n * 4 * H;
    const LstmUnitValues v = LstmUnitForward(an[d], an[H + d], an[2 * H + d], an[3 * H + d], cont[n], c_prev[i]);
    c[i] = v.c;
    h[i] = LstmUnitHidden(v);
  });
}

void LSTMUnitLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                 const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[2], ConfigError,
                  "cannot backpropagate to the sequence-continuation input (bottom 2)");
  if (!propagate_down[0] && !propagate_down[1]) return;
  const float* c_prev = bottom[0]->data();
  const float* a = bottom[1]->data();
  const float* cont = bottom[2]->data();
  const float* dc = top[0]->diff();
  const float* dh = top[1]->diff();
  float* dc_prev = propagate_down[0] ? bottom[0]->mutable_diff() : nullptr;
  float* da = propagate_down[1] ? bottom[1]->mutable_diff() : nullptr;
  const int64_t H = H_;
  ParallelFor(int64_t(N_) * H, int64_t(N_) * H * kLstmUnitWork, [&](int64_t i) {
    const int64_t n = i / H, d = i % H;
    const float* an = a + n * 4 * H;
    const LstmUnitValues v = LstmUnitForward(an[d], an[H + d], an[2 * H + d], an[3 * H + d], cont[n], c_prev[i]);
    const LstmUnitGrads g = LstmUnitBackward(v, cont[n], c_prev[i], dc[i], dh[i]);
    if (dc_prev) dc_prev[i] = g.c_prev;
    if (da) {
      float* dn = da + n * 4 * H;
      dn[d] = g.a_i;
      dn[H + d] = g.a_f;
      dn[2 * H + d] = g.a_o;
      dn[3 * H + d] = g.a_g;
    }
  });
}

// ---- shared recurrent machinery ----------------------------------------------------------

void RecurrentLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("recurrent_param");
  H_ = p.integer("num_output");
  COS_LAYER_CHECK(H_ > 0, ConfigError, "recurrent_param.num_output must be positive, got ", H_);
  CheckedMul(4, H_, where(), "4 · num_output");
  expose_hidden_ = p.flag("expose_hidden");
  const int states = NumStates();
  const int hidden = expose_hidden_ ? states : 0;
  const char* state_names = states == 2 ? "h0, c0" : "h0";
  COS_LAYER_CHECK(bottom.size() >= size_t(2 + hidden) && bottom.size() <= size_t(3 + hidden),
                  ConfigError, "takes bottoms x, cont, an optional static input",
                  expose_hidden_ ? Msg(" and the initial states ", state_names, " (expose_hidden)") : "",
                  "; got ", bottom.size(), " bottoms");
  COS_LAYER_CHECK(top.size() == size_t(1 + hidden), ConfigError, "takes ", 1 + hidden, " top(s)",
                  expose_hidden_ ? Msg(" (the output and the final states ", states == 2 ? "hT, cT" : "hT", ")") : "",
                  "; got ", top.size());
  static_input_ = bottom.size() == size_t(3 + hidden);
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 2, ShapeError,
                  "input x must have at least 2 axes (T, N, ...), got ", bottom[0]->shape_string());
  D_ = static_cast<int>(bottom[0]->count(2));
  if (static_input_) {
    COS_LAYER_CHECK(bottom[2]->num_axes() >= 1, ShapeError, "the static input (bottom 2) must be (N, ...)");
    Ds_ = static_cast<int>(bottom[2]->count(1));
  }
  const int G = GateWidth();
  auto add = [&](std::vector<int> shape, const char* filler) {
    CheckedCount(shape, where(), "parameter count");
    auto blob = std::make_shared<Tensor>(shape);
    Fill(p.child(filler), blob.get(), where() + filler + ": ");
    blobs_.push_back(blob);
  };
  blobs_.clear();
  add({G, D_}, "weight_filler");  // W_xc / W_xh
  add({G}, "bias_filler");        // b_c / b_h
  if (static_input_) add({G, Ds_}, "weight_filler");  // W_xc_static / W_xh_static
  recurrent_weight_ = static_cast<int>(blobs_.size());
  add({G, H_}, "weight_filler");  // W_hc / W_hh
  AddBlobs(p);
}

void RecurrentLayer::CheckShapes(const Tensors& bottom) const {
  const Tensor& x = *bottom[0];
  const Tensor& cont = *bottom[1];
  COS_LAYER_CHECK(x.num_axes() >= 2 && x.shape(0) >= 1 && x.shape(1) >= 1, ShapeError,
                  "input x must be (T, N, ...) with T, N >= 1, got ", x.shape_string());
  const int T = x.shape(0), N = x.shape(1);
  COS_LAYER_CHECK(x.count(2) == D_, ShapeError, "input x ", x.shape_string(), " has ", x.count(2),
                  " features per step but the weights expect ", D_);
  COS_LAYER_CHECK(cont.num_axes() == 2 && cont.shape(0) == T && cont.shape(1) == N, ShapeError,
                  "cont (bottom 1) must be (T, N) = (", T, ", ", N, "), got ", cont.shape_string());
  if (static_input_) {
    const Tensor& xs = *bottom[2];
    COS_LAYER_CHECK(xs.num_axes() >= 1 && xs.shape(0) == N && xs.count(1) == Ds_, ShapeError,
                    "the static input (bottom 2) must be (N = ", N, ", ...) with ", Ds_,
                    " features, got ", xs.shape_string());
  }
  if (expose_hidden_) {
    const int first = 2 + static_input_;
    for (int s = 0; s < NumStates(); ++s) {
      const Tensor& h0 = *bottom[first + s];
      COS_LAYER_CHECK(h0.num_axes() == 3 && h0.shape(0) == 1 && h0.shape(1) == N && h0.shape(2) == H_,
                      ShapeError, "initial state bottom ", first + s, " must be ", ShapeOf(1, N, H_),
                      ", got ", h0.shape_string());
    }
  }
}

void RecurrentLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  CheckShapes(bottom);
  T_ = bottom[0]->shape(0);
  N_ = bottom[0]->shape(1);
  const int G = GateWidth();
  CheckedCount(std::vector<int64_t>{T_, N_, G}, where(), "pre-activation count");
  CheckedCount(std::vector<int64_t>{T_, N_, D_}, where(), "input count");
  top[0]->Reshape({T_, N_, H_});
  for (size_t s = 1; s < top.size(); ++s) top[s]->Reshape({1, N_, H_});
  const int states = NumStates();
  if (states_.empty()) {
    states_.resize(states);
    initial_.resize(states);
    carried_.resize(states);
    dstate_.resize(states);
  }
  for (int s = 0; s < states; ++s) {
    states_[s].Reshape({T_, N_, H_});
    initial_[s].Reshape({N_, H_});
    dstate_[s].Reshape({N_, H_});
  }
  if (N_ != carried_n_) {  // the carried state belongs to another batch size: start from zeros
    for (Tensor& c : carried_) {
      c.Reshape({N_, H_});
      fill(c.count(), 0.0f, c.mutable_data());
    }
    carried_n_ = N_;
  }
  pre_.Reshape({T_, N_, G});
  hcont_.Reshape({T_, N_, H_});
  if (static_input_) static_pre_.Reshape({N_, G});
  if (ones_.count() != int64_t(T_) * N_) {
    ones_.Reshape({T_ * N_});
    fill(ones_.count(), 1.0f, ones_.mutable_data());
  }
  ReshapeBuffers();
}

const float* RecurrentLayer::StateBefore(int s, int t) const {
  return t == 0 ? initial_[s].data() : states_[s].data() + int64_t(t - 1) * N_ * H_;
}

void RecurrentLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const int G = GateWidth(), TN = T_ * N_;
  const int64_t NH = int64_t(N_) * H_, H = H_;
  const int first_state = 2 + static_input_;
  for (int s = 0; s < NumStates(); ++s) {
    const float* from = expose_hidden_ ? bottom[first_state + s]->data() : carried_[s].data();
    copy(NH, from, initial_[s].mutable_data());
  }
  // All steps' input terms at once: pre = x·W_xᵀ + b.
  gemm(false, true, TN, G, D_, 1.0f, bottom[0]->data(), blobs_[0]->data(), 0.0f, pre_.mutable_data());
  gemm(false, false, TN, G, 1, 1.0f, ones_.data(), blobs_[1]->data(), 1.0f, pre_.mutable_data());
  if (static_input_) {
    gemm(false, true, N_, G, Ds_, 1.0f, bottom[2]->data(), blobs_[2]->data(), 0.0f,
         static_pre_.mutable_data());
  }
  const float* w_h = blobs_[recurrent_weight_]->data();
  const float* cont_all = bottom[1]->data();
  for (int t = 0; t < T_; ++t) {
    const float* cont = cont_all + int64_t(t) * N_;
    const float* h_prev = StateBefore(0, t);
    float* hc = At(hcont_, t, H_);
    ParallelFor(NH, [&](int64_t i) { hc[i] = cont[i / H] * h_prev[i]; });
    float* pre = At(pre_, t, G);
    gemm(false, true, N_, G, H_, 1.0f, hc, w_h, 1.0f, pre);
    if (static_input_) axpy(int64_t(N_) * G, 1.0f, static_pre_.data(), pre);
    StepForward(t, cont);
  }
  OutputForward(top);
  for (int s = 0; s < NumStates(); ++s) {
    const float* last = states_[s].data() + int64_t(T_ - 1) * NH;
    copy(NH, last, expose_hidden_ ? top[1 + s]->mutable_data() : carried_[s].mutable_data());
  }
}

void RecurrentLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                  const Tensors& bottom) {
  const int G = GateWidth(), TN = T_ * N_;
  const int64_t NH = int64_t(N_) * H_, H = H_;
  const float* dh_direct = OutputBackward(top);
  for (int s = 0; s < NumStates(); ++s) {
    if (expose_hidden_) {
      copy(NH, top[1 + s]->diff(), dstate_[s].mutable_data());
    } else {
      fill(NH, 0.0f, dstate_[s].mutable_data());  // no gradient crosses Forward calls
    }
  }
  const float* w_h = blobs_[recurrent_weight_]->data();
  const float* cont_all = bottom[1]->data();
  for (int t = T_ - 1; t >= 0; --t) {
    const float* cont = cont_all + int64_t(t) * N_;
    StepBackward(t, cont, dh_direct + int64_t(t) * NH);
    // h_{t−1} reaches step t only through cont_t · h_{t−1}.
    float* dh_prev = dstate_[0].mutable_data();
    gemm(false, false, N_, H_, G, 1.0f, At(pre_, t, G), w_h, 0.0f, dh_prev);
    ParallelFor(NH, [&](int64_t i) { dh_prev[i] *= cont[i / H]; });
  }
  const float* dpre = pre_.data();
  const float* x = bottom[0]->data();
  if (param_propagate_down(0)) gemm(true, false, G, D_, TN, 1.0f, dpre, x, 1.0f, blobs_[0]->mutable_diff());
  if (param_propagate_down(1)) gemv(true, TN, G, 1.0f, dpre, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
  if (param_propagate_down(recurrent_weight_)) {
    gemm(true, false, G, H_, TN, 1.0f, dpre, hcont_.data(), 1.0f, blobs_[recurrent_weight_]->mutable_diff());
  }
  if (propagate_down[0]) {
    gemm(false, false, TN, D_, G, 1.0f, dpre, blobs_[0]->data(), 0.0f, bottom[0]->mutable_diff());
  }
  if (propagate_down[1]) fill(bottom[1]->count(), 0.0f, bottom[1]->mutable_diff());
  if (static_input_ && (param_propagate_down(2) || propagate_down[2])) {
    // The static term enters every step: its gradient is the sum over t (rows of length N·G).
    float* dstatic = static_pre_.mutable_data();
    gemv(true, T_, N_ * G, 1.0f, dpre, ones_.data(), 0.0f, dstatic);
    if (param_propagate_down(2)) {
      gemm(true, false, G, Ds_, N_, 1.0f, dstatic, bottom[2]->data(), 1.0f, blobs_[2]->mutable_diff());
    }
    if (propagate_down[2]) {
      gemm(false, false, N_, Ds_, G, 1.0f, dstatic, blobs_[2]->data(), 0.0f, bottom[2]->mutable_diff());
    }
  }
  if (expose_hidden_) {
    const int first_state = 2 + static_input_;
    for (int s = 0; s < NumStates(); ++s) {
      if (propagate_down[first_state + s]) copy(NH, dstate_[s].data(), bottom[first_state + s]->mutable_diff());
    }
  }
}

// ---- LSTM ----------------------------------------------------------------------------------

void LSTMLayer::ReshapeBuffers() { gates_.Reshape({T_, N_, 4 * H_}); }

void LSTMLayer::StepForward(int t, const float* cont) {
  const int64_t H = H_, G = 4 * H;
  const float* pre = At(pre_, t, GateWidth());
  const float* c_prev = StateBefore(1, t);
  float* gates = At(gates_, t, GateWidth());
  float* c = At(states_[1], t, H_);
  float* h = At(states_[0], t, H_);
  ParallelFor(int64_t(N_) * H, int64_t(N_) * H * kLstmUnitWork, [&](int64_t i) {
    const int64_t n = i / H, d = i % H;
    const float* a = pre + n * G;
    const LstmUnitValues v = LstmUnitForward(a[d], a[H + d], a[2 * H + d], a[3 * H + d], cont[n], c_prev[i]);
    float* gn = gates + n * G;
    gn[d] = v.i;
    gn[H + d] = v.f;
    gn[2 * H + d] = v.o;
    gn[3 * H + d] = v.g;
    c[i] = v.c;
    h[i] = LstmUnitHidden(v);
  });
}

void LSTMLayer::OutputForward(const Tensors& top) {
  copy(states_[0].count(), states_[0].data(), top[0]->mutable_data());
}

const float* LSTMLayer::OutputBackward(const Tensors& top) { return top[0]->diff(); }

void LSTMLayer::StepBackward(int t, const float* cont, const float* dh_direct) {
  const int64_t H = H_, G = 4 * H;
  const float* gates = gates_.data() + int64_t(t) * N_ * G;
  const float* c = states_[1].data() + int64_t(t) * N_ * H;
  const float* c_prev = StateBefore(1, t);
  const float* dh_later = dstate_[0].data();
  float* dc = dstate_[1].mutable_data();  // dc_t in, dc_{t−1} out
  float* dpre = At(pre_, t, GateWidth());
  ParallelFor(int64_t(N_) * H, int64_t(N_) * H * kLstmUnitWork, [&](int64_t i) {
    const int64_t n = i / H, d = i % H;
    const float* gn = gates + n * G;
    const LstmUnitValues v{gn[d], gn[H + d], gn[2 * H + d], gn[3 * H + d], c[i]};
    const LstmUnitGrads g = LstmUnitBackward(v, cont[n], c_prev[i], dc[i], dh_direct[i] + dh_later[i]);
    float* dn = dpre + n * G;
    dn[d] = g.a_i;
    dn[H + d] = g.a_f;
    dn[2 * H + d] = g.a_o;
    dn[3 * H + d] = g.a_g;
    dc[i] = g.c_prev;
  });
}

// ---- RNN -----------------------------------------------------------------------------------

void RNNLayer::AddBlobs(const Params& p) {
  auto w_ho = std::make_shared<Tensor>(std::vector<int>{H_, H_});
  Fill(p.child("weight_filler"), w_ho.get(), where() + "weight_filler: ");
  auto b_o = std::make_shared<Tensor>(std::vector<int>{H_});
  Fill(p.child("bias_filler"), b_o.get(), where() + "bias_filler: ");
  blobs_.push_back(w_ho);
  blobs_.push_back(b_o);
}

void RNNLayer::ReshapeBuffers() {
  output_.Reshape({T_, N_, H_});
  dout_.Reshape({T_, N_, H_});
  dh_.Reshape({T_, N_, H_});
}

void RNNLayer::StepForward(int t, const float*) {
  const float* pre = At(pre_, t, H_);
  float* h = At(states_[0], t, H_);
  const int64_t NH = int64_t(N_) * H_;
  ParallelFor(NH, NH * kTanhWork, [&](int64_t i) { h[i] = std::tanh(pre[i]); });
}

void RNNLayer::OutputForward(const Tensors& top) {
  const int TN = T_ * N_;
  const int w_ho = recurrent_weight_ + 1, b_o = recurrent_weight_ + 2;
  float* o = output_.mutable_data();
  gemm(false, true, TN, H_, H_, 1.0f, states_[0].data(), blobs_[w_ho]->data(), 0.0f, o);
  gemm(false, false, TN, H_, 1, 1.0f, ones_.data(), blobs_[b_o]->data(), 1.0f, o);
  const int64_t count = output_.count();
  ParallelFor(count, count * kTanhWork, [&](int64_t i) { o[i] = std::tanh(o[i]); });
  copy(count, o, top[0]->mutable_data());
}

const float* RNNLayer::OutputBackward(const Tensors& top) {
  const int TN = T_ * N_;
  const int w_ho = recurrent_weight_ + 1, b_o = recurrent_weight_ + 2;
  const float* o = output_.data();
  const float* dy = top[0]->diff();
  float* dout = dout_.mutable_data();
  ParallelFor(dout_.count(), [&](int64_t i) { dout[i] = dy[i] * (1.0f - o[i] * o[i]); });
  if (param_propagate_down(w_ho)) {
    gemm(true, false, H_, H_, TN, 1.0f, dout, states_[0].data(), 1.0f, blobs_[w_ho]->mutable_diff());
  }
  if (param_propagate_down(b_o)) gemv(true, TN, H_, 1.0f, dout, ones_.data(), 1.0f, blobs_[b_o]->mutable_diff());
  gemm(false, false, TN, H_, H_, 1.0f, dout, blobs_[w_ho]->data(), 0.0f, dh_.mutable_data());
  return dh_.data();
}

void RNNLayer::StepBackward(int t, const float*, const float* dh_direct) {
  const float* h = states_[0].data() + int64_t(t) * N_ * H_;
  const float* dh_later = dstate_[0].data();
  float* dpre = At(pre_, t, H_);
  ParallelFor(int64_t(N_) * H_, [&](int64_t i) {
    dpre[i] = (dh_direct[i] + dh_later[i]) * (1.0f - h[i] * h[i]);
  });
}

}  // namespace caffeonspark
