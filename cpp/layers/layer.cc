#include "layers/layer.h"

#include "core/math.h"

namespace caffeonspark {

std::string Layer::where() const {
  std::string out = Msg("layer '", spec_.name, "' (", spec_.type, ")");
  if (!spec_.where.empty()) out += " at " + spec_.where;
  return out + ": ";
}

void Layer::CheckBlobCounts(const Tensors& bottom, const Tensors& top) const {
  enum Rule { kExactly, kAtLeast, kAtMost };
  auto check = [&](int want, size_t have_size, Rule rule, const char* what) {
    int have = static_cast<int>(have_size);
    if (want < 0) return;
    bool ok = rule == kExactly ? have == want : rule == kAtLeast ? have >= want : have <= want;
    static const char* const kWords[] = {"exactly", "at least", "at most"};
    COS_CHECK(ok, ConfigError, where(), "takes ", kWords[rule], " ", want, " ", what, ", got ", have);
  };
  check(ExactNumBottomBlobs(), bottom.size(), kExactly, "bottom blob(s)");
  check(MinBottomBlobs(), bottom.size(), kAtLeast, "bottom blob(s)");
  check(MaxBottomBlobs(), bottom.size(), kAtMost, "bottom blob(s)");
  check(ExactNumTopBlobs(), top.size(), kExactly, "top blob(s)");
  check(MinTopBlobs(), top.size(), kAtLeast, "top blob(s)");
  check(MaxTopBlobs(), top.size(), kAtMost, "top blob(s)");
  COS_CHECK(!EqualNumBottomTopBlobs() || bottom.size() == top.size(), ConfigError, where(),
            "needs as many tops as bottoms, got ", bottom.size(), " bottoms and ", top.size(), " tops");
}

void Layer::SetUp(const Tensors& bottom, const Tensors& top) {
  CheckBlobCounts(bottom, top);
  LayerSetUp(bottom, top);
  if (param_propagate_down_.size() < blobs_.size()) param_propagate_down_.resize(blobs_.size(), true);
  Reshape(bottom, top);
  SetLossWeights(top);
}

void Layer::SetLossWeights(const Tensors& top) {
  const auto& weights = spec_.loss_weights;
  COS_CHECK(weights.empty() || weights.size() == top.size(), ConfigError, where(),
            "loss_weight must be given once per top (", top.size(), " tops, ", weights.size(),
            " weights)");
  loss_.assign(top.size(), 0.0f);
  for (size_t i = 0; i < top.size(); ++i) {
    float w = weights.empty() ? DefaultLossWeight(static_cast<int>(i)) : weights[i];
    loss_[i] = w;
    if (w != 0) fill(top[i]->count(), w, top[i]->mutable_diff());
  }
}

void Layer::set_loss(int top_index, float value) {
  if (static_cast<int>(loss_.size()) <= top_index) loss_.resize(top_index + 1, 0.0f);
  loss_[top_index] = value;
}

void Layer::set_param_propagate_down(int i, bool value) {
  if (static_cast<int>(param_propagate_down_.size()) <= i) param_propagate_down_.resize(i + 1, true);
  param_propagate_down_[i] = value;
}

float Layer::Forward(const Tensors& bottom, const Tensors& top) {
  Reshape(bottom, top);
  Forward_cpu(bottom, top);
  double total = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    if (loss(static_cast<int>(i)) == 0) continue;
    total += dot(top[i]->count(), top[i]->data(), top[i]->diff());
  }
  return static_cast<float>(total);
}

void Layer::Backward(const Tensors& top, const std::vector<bool>& propagate_down,
                     const Tensors& bottom) {
  Backward_cpu(top, propagate_down, bottom);
}

}  // namespace caffeonspark
