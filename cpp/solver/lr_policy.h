// Learning-rate policies of Caffe's SGD-family solvers (docs/CAFFE.md §4.4). `iter` is the
// number of updates already applied (0-based); base_lr, gamma, power, stepsize, stepvalue
// and max_iter come from the SolverParameter:
//   fixed      base_lr
//   step       base_lr * gamma^floor(iter / stepsize)       (stepsize > 0)
//   exp        base_lr * gamma^iter
//   inv        base_lr * (1 + gamma*iter)^(-power)
//   multistep  base_lr * gamma^current_step, current_step advancing by at most one per call
//              while iter >= stepvalue[current_step]
//   poly       base_lr * (1 - iter/max_iter)^power           (max_iter > 0)
//   sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))
// current_step is solver state (saved in the .solverstate): multistep advances it, and
// step overwrites it with floor(iter / stepsize), as Caffe does. An unknown or missing
// policy is a ConfigError. Tests: tests/solver/test_lr_policy.py.
#pragma once

#include <string>
#include <vector>

#include "core/params.h"

namespace caffeonspark {

class LrPolicy {
 public:
  // Reads lr_policy, base_lr, gamma, power, stepsize, stepvalue, max_iter from `solver`.
  explicit LrPolicy(const Params& solver);

  // The rate for update number `iter`; updates `current_step` (step, multistep).
  float Rate(int iter, int& current_step) const;

  const std::string& name() const { return policy_; }

 private:
  std::string policy_;
  double base_lr_ = 0, gamma_ = 0, power_ = 0;
  int stepsize_ = 0, max_iter_ = 0;
  std::vector<int> stepvalue_;
};

}  // namespace caffeonspark
