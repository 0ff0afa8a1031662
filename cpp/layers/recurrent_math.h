// The per-element arithmetic of the recurrent layers (docs/CAFFE.md §2.7), written once for
// the CPU loops in cpp/layers/recurrent.cc and a future CUDA kernel (STYLE 5b).
//
// One LSTM unit, gate pre-activations (a_i, a_f, a_o, a_g) in Caffe's order i, f, o, g and a
// sequence-continuation flag `cont` (0 where a sequence starts):
//   i = σ(a_i)   f = cont·σ(a_f) (exactly 0 when cont is 0)   o = σ(a_o)   g = tanh(a_g)
//   c = f·c_prev + i·g        h = o·tanh(c)
// Its gradient, from dc and dh (the gradients of c and h from every later use):
//   dc_total = dc + dh·o·(1 − tanh(c)²)     dc_prev = dc_total·f
//   da_i = dc_total·g·i(1 − i)    da_f = dc_total·c_prev·cont·σ(a_f)(1 − σ(a_f))
//   da_o = dh·tanh(c)·o(1 − o)    da_g = dc_total·i·(1 − g²)
// Tests: tests/layers/test_recurrent.py.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define COS_RECURRENT_HD __host__ __device__
#else
#define COS_RECURRENT_HD
#endif

namespace caffeonspark {

COS_RECURRENT_HD inline float RecurrentSigmoid(float x) { return 0.5f * tanhf(0.5f * x) + 0.5f; }

// The activated gates of one unit (f already multiplied by cont) and its new cell value.
struct LstmUnitValues {
  float i, f, o, g, c;
};

COS_RECURRENT_HD inline LstmUnitValues LstmUnitForward(float a_i, float a_f, float a_o, float a_g,
                                                       float cont, float c_prev) {
  LstmUnitValues v;
  v.i = RecurrentSigmoid(a_i);
  v.f = cont == 0.0f ? 0.0f : cont * RecurrentSigmoid(a_f);
  v.o = RecurrentSigmoid(a_o);
  v.g = tanhf(a_g);
  v.c = v.f * c_prev + v.i * v.g;
  return v;
}

COS_RECURRENT_HD inline float LstmUnitHidden(const LstmUnitValues& v) { return v.o * tanhf(v.c); }

// Gradients of one unit: pre-activations (da_i, da_f, da_o, da_g) and the previous cell.
struct LstmUnitGrads {
  float a_i, a_f, a_o, a_g, c_prev;
};

// `v` as LstmUnitForward returned it for (cont, c_prev).
COS_RECURRENT_HD inline LstmUnitGrads LstmUnitBackward(const LstmUnitValues& v, float cont,
                                                       float c_prev, float dc, float dh) {
  const float tanh_c = tanhf(v.c);
  const float dc_total = dc + dh * v.o * (1.0f - tanh_c * tanh_c);
  // f = cont·σ, so dσ/da = σ(1 − σ) with σ = f / cont; 0 when cont is 0.
  const float sig_f = cont == 0.0f ? 0.0f : v.f / cont;
  LstmUnitGrads d;
  d.a_i = dc_total * v.g * v.i * (1.0f - v.i);
  d.a_f = dc_total * c_prev * cont * sig_f * (1.0f - sig_f);
  d.a_o = dh * tanh_c * v.o * (1.0f - v.o);
  d.a_g = dc_total * v.i * (1.0f - v.g * v.g);
  d.c_prev = dc_total * v.f;
  return d;
}

}  // namespace caffeonspark
