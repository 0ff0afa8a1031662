#include "layers/input.h"

namespace caffeonspark {

void InputLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("input_param");
  size_t shapes = p.size("shape");
  COS_LAYER_CHECK(shapes == 0 || shapes == 1 || shapes == top.size(), ConfigError,
                  "input_param needs one shape for all tops or one per top, got ", shapes,
                  " shapes for ", top.size(), " tops");
  for (size_t i = 0; i < top.size() && shapes > 0; ++i) {
    top[i]->Reshape(p.child("shape", shapes == 1 ? 0 : i).integers("dim"));
  }
}

}  // namespace caffeonspark
