#include "solver/lr_policy.h"

#include <cmath>

#include "core/errors.h"

namespace caffeonspark {

namespace {

const char* const kPolicies = "fixed, step, exp, inv, multistep, poly, sigmoid";

}  // namespace

LrPolicy::LrPolicy(const Params& solver) {
  policy_ = solver.size("lr_policy") ? solver.str("lr_policy") : std::string();
  base_lr_ = solver.number_or("base_lr", 0);
  gamma_ = solver.number_or("gamma", 0);
  power_ = solver.number_or("power", 0);
  stepsize_ = static_cast<int>(solver.number_or("stepsize", 0));
  max_iter_ = static_cast<int>(solver.number_or("max_iter", 0));
  if (solver.has("stepvalue")) stepvalue_ = solver.integers("stepvalue");

  COS_CHECK(!policy_.empty(), ConfigError,
            "solver: lr_policy is not set (it has no default); choose one of ", kPolicies);
  if (policy_ == "step") {
    COS_CHECK(stepsize_ > 0, ConfigError, "solver: lr_policy \"step\" needs stepsize > 0, got ",
              stepsize_);
    COS_CHECK(gamma_ >= 0, ConfigError, "solver: lr_policy \"step\" needs gamma >= 0, got ",
              gamma_);
  } else if (policy_ == "poly") {
    COS_CHECK(max_iter_ > 0, ConfigError, "solver: lr_policy \"poly\" needs max_iter > 0, got ",
              max_iter_);
  } else {
    COS_CHECK(policy_ == "fixed" || policy_ == "exp" || policy_ == "inv" ||
                  policy_ == "multistep" || policy_ == "sigmoid",
              ConfigError,
              "solver: unknown lr_policy \"", policy_, "\"; known policies: ", kPolicies);
  }
}

float LrPolicy::Rate(int iter, int& current_step) const {
  const double t = iter;
  double rate = base_lr_;
  if (policy_ == "step") {
    current_step = iter / stepsize_;
    rate = base_lr_ * std::pow(gamma_, current_step);
  } else if (policy_ == "exp") {
    rate = base_lr_ * std::pow(gamma_, t);
  } else if (policy_ == "inv") {
    rate = base_lr_ * std::pow(1.0 + gamma_ * t, -power_);
  } else if (policy_ == "multistep") {
    if (current_step < static_cast<int>(stepvalue_.size()) && iter >= stepvalue_[current_step])
      ++current_step;
    rate = base_lr_ * std::pow(gamma_, current_step);
  } else if (policy_ == "poly") {
    rate = base_lr_ * std::pow(1.0 - t / max_iter_, power_);
  } else if (policy_ == "sigmoid") {
    rate = base_lr_ / (1.0 + std::exp(-gamma_ * (t - stepsize_)));
  }
  return static_cast<float>(rate);
}

}  // namespace caffeonspark
