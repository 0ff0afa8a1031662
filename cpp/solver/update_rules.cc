#include "solver/update_rules.h"

#include <cmath>
#include <functional>
#include <map>

#include "core/errors.h"

namespace caffeonspark {

namespace {

constexpr int64_t kParallelThreshold = 65536;

// ---- the six rules: element-wise loops over (g -> diff, h, h2), no scratch buffers ----

class SgdRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "SGD"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* h = h_blob.mutable_data();
    const float momentum = momentum_;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      h[i] = local_rate * g[i] + momentum * h[i];
      g[i] = h[i];
    }
  }
};

class NesterovRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "Nesterov"; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor*) const override {
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* h = h_blob.mutable_data();
    const float momentum = momentum_;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      const float previous = h[i];
      h[i] = local_rate * g[i] + momentum * h[i];
      g[i] = (1 + momentum) * h[i] - momentum * previous;
    }
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
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* h = h_blob.mutable_data();
    const float delta = delta_;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      h[i] += g[i] * g[i];
      g[i] = local_rate * (g[i] / (std::sqrt(h[i]) + delta));
    }
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
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* h = h_blob.mutable_data();
    const float decay = rms_decay_, delta = delta_;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      h[i] = (1 - decay) * (g[i] * g[i]) + decay * h[i];
      g[i] = local_rate * (g[i] / (std::sqrt(h[i]) + delta));
    }
  }
};

class AdaDeltaRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "AdaDelta"; }
  int history_sets() const override { return 2; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int, Tensor& h_blob,
                          Tensor* h2_blob) const override {
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* h = h_blob.mutable_data();
    float* h2 = h2_blob->mutable_data();
    const float m = momentum_, delta = delta_;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      h[i] = (1 - m) * (g[i] * g[i]) + m * h[i];
      const float u = g[i] * std::sqrt((h2[i] + delta) / (h[i] + delta));
      h2[i] = (1 - m) * (u * u) + m * h2[i];
      g[i] = local_rate * u;
    }
  }
};

class AdamRule : public UpdateRule {
 public:
  using UpdateRule::UpdateRule;
  const char* type() const override { return "Adam"; }
  int history_sets() const override { return 2; }
  void ComputeUpdateValue(Tensor& param, float local_rate, int iter, Tensor& m_blob,
                          Tensor* v_blob) const override {
    const int64_t n = param.count();
    float* g = param.mutable_diff();
    float* m = m_blob.mutable_data();
    float* v = v_blob->mutable_data();
    const float beta1 = momentum_, beta2 = momentum2_, eps = delta_;
    const double t = iter + 1.0;
    const float correction = static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t)) /
                                                (1.0 - std::pow(double(beta1), t)));
    const float step = local_rate * correction;
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = (1 - beta1) * g[i] + beta1 * m[i];
      v[i] = (1 - beta2) * (g[i] * g[i]) + beta2 * v[i];
      g[i] = step * (m[i] / (std::sqrt(v[i]) + eps));
    }
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
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) g[i] += local_decay * w[i];
  } else {
#pragma omp parallel for if (n > kParallelThreshold)
    for (int64_t i = 0; i < n; ++i) {
      const float sign = static_cast<float>((0.0f < w[i]) - (w[i] < 0.0f));
      g[i] += local_decay * sign;
    }
  }
}

}  // namespace caffeonspark
