// Parameter (rules in parameter.h).
#include "layers/parameter.h"

#include <memory>

#include "core/checked_size.h"
#include "core/math.h"

namespace caffeonspark {

void ParameterLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("parameter_param");
  std::vector<int> shape;
  if (p.size("shape")) shape = p.child("shape").integers("dim");
  for (int d : shape) {
    COS_LAYER_CHECK(d >= 0, ConfigError, "parameter_param.shape has a negative dim ", d);
  }
  CheckedCount(shape, where(), "parameter count");
  blobs_ = {std::make_shared<Tensor>(shape)};
}

void ParameterLayer::Reshape(const Tensors&, const Tensors& top) {
  top[0]->ReshapeLike(*blobs_[0]);
}

void ParameterLayer::Forward_cpu(const Tensors&, const Tensors& top) {
  copy(blobs_[0]->count(), blobs_[0]->data(), top[0]->mutable_data());
}

void ParameterLayer::Backward_cpu(const Tensors& top, const std::vector<bool>&, const Tensors&) {
  if (!param_propagate_down(0)) return;
  axpy(blobs_[0]->count(), 1.0f, top[0]->diff(), blobs_[0]->mutable_diff());
}

}  // namespace caffeonspark
