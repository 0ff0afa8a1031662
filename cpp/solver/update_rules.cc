// The six update rules, regularization and clipping (rules in update_rules.h).
// Tests: tests/solver/test_update_rules.py.
#include "solver/update_rules.h"

#include <cmath>
#include <functional>
#include <map>

#include "core/errors.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {

// Runs step(g, h) on each pair (diff element of param, its history element), on all cores
// when the parameter is large. The step reads the gradient and leaves the update in g.
template <typename Step>
void ForEachSlot(Tensor& param, Tensor& history, Step step) {
  float* g = param.mutable_diff();
  float* h = history.mutable_data();
  ParallelFor(param.count(), [=](int64_t i) { step(g[i], h[i]); });
}

// The same for rules with two history sets: step(g, h, h2).
template <typename Step>
void ForEachSlot(Tensor& param, Tensor& history, Tensor& history2, Step step) {
  float* g = param.mutable_diff();
  float* h = history.mutable_data();
  float* h2 = history2.mutable_data();
  ParallelFor(param.count(), [=](int64_t i) { step(g[i], h[i], h2[i]); });
}

// ---- the six rules: element-wise steps over (g -> diff, h, h2), no scratch buffers ----

class SgdRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "SGD"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const float momentum = momentum_;
    ForEachSlot(param, h_blob, [=](float& g, float& h) {
      h = local_rate * g + momentum * h;
      g = h;
    });
  }
};

class NesterovRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "Nesterov"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const float momentum = momentum_;
    ForEachSlot(param, h_blob, [=](float& g, float& h) {
      const float previous = h;
      h = local_rate * g + momentum * h;
      g = (1 + momentum) * h - momentum * previous;
    });
  }
};

class AdaGradRule : public UpdateRule {
 public:
  explicit AdaGradRule(const Params& solver) : UpdateRule(solver) {
    COS_CHECK(momentum_ == 0, ConfigError, "solver: type AdaGrad cannot use momentum (got ",
              momentum_, "); set momentum: 0");
  }
  const char* type() const override { return "AdaGrad"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const float delta = delta_;
    ForEachSlot(param, h_blob, [=](float& g, float& h) {
      h += g * g;
      g = local_rate * (g / (std::sqrt(h) + delta));
    });
  }
};

class RmsPropRule : public UpdateRule {
 public:
  explicit RmsPropRule(const Params& solver) : UpdateRule(solver) {
    COS_CHECK(momentum_ == 0, ConfigError, "solver: type RMSProp cannot use momentum (got ",
              momentum_, "); set momentum: 0 and use rms_decay");
    COS_CHECK(rms_decay_ >= 0 && rms_decay_ < 1, ConfigError,
              "solver: rms_decay must lie in [0, 1), got ", rms_decay_);
  }
  const char* type() const override { return "RMSProp"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const float decay = rms_decay_, delta = delta_;
    ForEachSlot(param, h_blob, [=](float& g, float& h) {
      h = (1 - decay) * (g * g) + decay * h;
      g = local_rate * (g / (std::sqrt(h) + delta));
    });
  }
};

class AdaDeltaRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "AdaDelta"; }
  int history_sets() const override { return 2; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor* h2_blob) const override {
    const float m = momentum_, delta = delta_;
    ForEachSlot(param, h_blob, *h2_blob, [=](float& g, float& h, float& h2) {
      h = (1 - m) * (g * g) + m * h;
      const float u = g * std::sqrt((h2 + delta) / (h + delta));
      h2 = (1 - m) * (u * u) + m * h2;
      g = local_rate * u;
    });
  }
};

class AdamRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "Adam"; }
  int history_sets() const override { return 2; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int iter, Tensor& m_blob,
                          Tensor* v_blob) const override {
    const float beta1 = momentum_, beta2 = momentum2_, eps = delta_;
    const double t = iter + 1.0;
    const float correction = static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t)) /
                                                (1.0 - std::pow(double(beta1), t)));
    const float step = local_rate * correction;
    ForEachSlot(param, m_blob, *v_blob, [=](float& g, float& m, float& v) {
      m = (1 - beta1) * g + beta1 * m;
      v = (1 - beta2) * (g * g) + beta2 * v;
      g = step * (m / (std::sqrt(v) + eps));
    });
  }
};

using Factory = std::function<std::unique_ptr<UpdateRule>(const Params&)>;

template <typename Rule>
Factory Make() {
  return [](const Params& solver) { return std::make_unique<Rule>(solver); };
}

const std::map<std::string, Factory>& Table() {
  static const std::map<std::string, Factory> table = {
      {"AdaDelta", Make<AdaDeltaRule>()}, {"AdaGrad", Make<AdaGradRule>()},
      {"Adam", Make<AdamRule>()},         {"Nesterov", Make<NesterovRule>()},
      {"RMSProp", Make<RmsPropRule>()},   {"SGD", Make<SgdRule>()},
  };
  return table;
}

}  // namespace

UpdateRule::UpdateRule(const Params& solver)
    : momentum_(static_cast<float>(solver.number_or("momentum", 0))),
      momentum2_(static_cast<float>(solver.number_or("momentum2", 0.999))),
      delta_(static_cast<float>(solver.number_or("delta", 1e-8))),
      rms_decay_(static_cast<float>(solver.number_or("rms_decay", 0.99))) {}

const std::vector<std::string>& UpdateRule::Types() {
  static const std::vector<std::string> types = [] {
    std::vector<std::string> out;
    for (const auto& [name, factory] : Table()) out.push_back(name);
    return out;
  }();
  return types;
}

std::unique_ptr<UpdateRule> UpdateRule::Create(const Params& solver) {
  std::string type = solver.size("type") ? solver.str("type") : "SGD";
  auto it = Table().find(type);
  if (it == Table().end()) {
    std::string known;
    for (const std::string& name : Types()) known += (known.empty() ? "" : ", ") + name;
    throw ConfigError(Msg("solver: unknown solver type \"", type, "\"; known types: ", known));
  }
  return it->second(solver);
}

Regularization ParseRegularization(const std::string& name) {
  if (name == "L2") return Regularization::kL2;
  if (name == "L1") return Regularization::kL1;
  throw ConfigError(Msg("solver: unknown regularization_type \"", name, "\"; use \"L2\" or \"L1\""));
}

double ClipGradients(const std::vector<Tensor*>& params, float clip) {
  if (clip < 0) return 0;
  double sumsq = 0;
  for (const Tensor* p : params) sumsq += p->sumsq_diff();
  const double norm = std::sqrt(sumsq);
  if (norm > clip) {
    const float factor = static_cast<float>(clip / norm);
    for (Tensor* p : params) p->scale_diff(factor);
  }
  return norm;
}

void NormalizeGradient(Tensor& param, int iter_size) {
  if (iter_size > 1) param.scale_diff(1.0f / static_cast<float>(iter_size));
}

void RegularizeGradient(Tensor& param, float local_decay, Regularization type) {
  if (local_decay == 0) return;
  const int64_t n = param.count();
  const float* w = param.data();
  float* g = param.mutable_diff();
  if (type == Regularization::kL2) {
    ParallelFor(n, [=](int64_t i) { g[i] += local_decay * w[i]; });
  } else {
    ParallelFor(n, [=](int64_t i) {
      const float sign = static_cast<float>((0.0f < w[i]) - (w[i] < 0.0f));
      g[i] += local_decay * sign;
    });
  }
}

}  // namespace caffeonspark
