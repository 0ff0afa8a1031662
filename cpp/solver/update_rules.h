// The per-parameter steps of Caffe's ApplyUpdate (docs/CAFFE.md §4.2), in the order
// the solver calls them:
//   ClipGradients     (once, over all learnable params) if clip_gradients >= 0 and the global
//                     L2 norm of the raw accumulated diffs exceeds it: diffs *= clip / norm
//   NormalizeGradient diff /= iter_size (when iter_size > 1)
//   RegularizeGradient d = weight_decay * decay_mult; L2: diff += d*w; L1: diff += d*sign(w)
//   UpdateRule::ComputeUpdateValue   g = diff -> diff = the value Net::Update subtracts,
//                     with local_rate = rate * lr_mult and the history h (and h2):
//     SGD       h = momentum*h + local_rate*g;                       diff = h
//     Nesterov  h' = momentum*h + local_rate*g;  diff = (1+momentum)*h' - momentum*h
//     AdaGrad   h += g^2;                        diff = local_rate * g / (sqrt(h) + delta)
//     RMSProp   h = rms_decay*h + (1-rms_decay)*g^2;  diff = local_rate * g / (sqrt(h) + delta)
//     AdaDelta  h = m*h + (1-m)*g^2; u = g*sqrt((h2+delta)/(h+delta)); h2 = m*h2 + (1-m)*u^2;
//               diff = local_rate*u                                   (m = momentum)
//     Adam      m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;  t = iter + 1;
//               diff = local_rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta)
//               (b1 = momentum, b2 = momentum2)
// History: one blob per learnable param shaped like it; AdaDelta and Adam keep a second set
// (h2 / v), stored after the first (solverstate order: first N, then next N).
// Defaults (SolverParameter): type "SGD", delta 1e-8, momentum2 0.999, rms_decay 0.99,
// regularization_type "L2". AdaGrad and RMSProp refuse momentum != 0; RMSProp needs
// rms_decay in [0, 1). Tests: tests/solver/test_update_rules.py.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/params.h"
#include "core/tensor.h"

namespace caffeonspark {

enum class Regularization { kL2, kL1 };

// "L2" / "L1"; anything else is a ConfigError.
Regularization ParseRegularization(const std::string& name);

// Scales every diff by clip / ||all diffs||_2 when that norm exceeds `clip` (clip < 0: off).
// Returns the norm before scaling (0 when off).
double ClipGradients(const std::vector<Tensor*>& params, float clip);
void NormalizeGradient(Tensor& param, int iter_size);
void RegularizeGradient(Tensor& param, float local_decay, Regularization type);

class UpdateRule {
 public:
  // The rule named by the solver's `type` (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam).
  static std::unique_ptr<UpdateRule> Create(const Params& solver);
  static const std::vector<std::string>& Types();

  explicit UpdateRule(const Params& solver);  // reads momentum, momentum2, delta, rms_decay
  virtual ~UpdateRule() = default;
  virtual const char* type() const = 0;
  // History blobs per learnable param: 1, or 2 for AdaDelta and Adam.
  virtual int history_sets() const { return 1; }
  // param.diff holds g (normalised and regularised) and receives the update value.
  // `iter` is the number of updates already applied; h2 is null when history_sets() == 1.
  virtual void ComputeUpdateValue(Tensor& param, float local_rate, int iter, Tensor& h,
                                  Tensor* h2) const = 0;

 protected:
  float momentum_ = 0, momentum2_ = 0, delta_ = 0, rms_decay_ = 0;
};

}  // namespace caffeonspark
