#include "layers/dummy_data.h"

#include "core/filler.h"

namespace caffeonspark {

const Params& DummyDataLayer::FillerOf(size_t i) const {
  const Params& p = spec_.params.child("dummy_data_param");
  const size_t fillers = p.size("data_filler");
  if (fillers == 0) return default_filler_;
  return p.child("data_filler", fillers == 1 ? 0 : i);
}

std::vector<int> DummyDataLayer::ShapeOf(const Params& p, size_t i, size_t num_top) const {
  static const char* const kLegacy[] = {"num", "channels", "height", "width"};
  bool legacy = false;
  for (const char* field : kLegacy) legacy = legacy || p.size(field) > 0;
  std::vector<int> shape;
  if (legacy) {
    COS_LAYER_CHECK(p.size("shape") == 0, ConfigError,
                    "dummy_data_param gives both `shape` and the legacy num/channels/height/"
                    "width fields; use one form");
    for (const char* field : kLegacy) {
      const size_t n = p.size(field);
      COS_LAYER_CHECK(n == 1 || n == num_top, ConfigError, "dummy_data_param.", field,
                      " must be given once or once per top (", num_top, " tops), got ", n);
      shape.push_back(p.integer(field, n == 1 ? 0 : i));
    }
  } else {
    const size_t n = p.size("shape");
    COS_LAYER_CHECK(n == 1 || n == num_top, ConfigError,
                    "dummy_data_param.shape must be given once or once per top (", num_top,
                    " tops), got ", n);
    shape = p.child("shape", n == 1 ? 0 : i).integers("dim");
  }
  for (int d : shape) {
    COS_LAYER_CHECK(d >= 0, ConfigError, "dummy_data_param: top ", i, " has a negative dim ", d);
  }
  return shape;
}

void DummyDataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("dummy_data_param");
  const size_t fillers = p.size("data_filler");
  COS_LAYER_CHECK(fillers == 0 || fillers == 1 || fillers == top.size(), ConfigError,
                  "dummy_data_param.data_filler must be given 0 times, once, or once per top (",
                  top.size(), " tops), got ", fillers);
  default_filler_ = Params();
  default_filler_.add("type", std::string("constant"));
  default_filler_.add("value", 0.0);
  default_filler_.add("sparse", -1.0);
  refill_.assign(top.size(), false);
  for (size_t i = 0; i < top.size(); ++i) {
    top[i]->Reshape(ShapeOf(p, i, top.size()));
    const Params& filler = FillerOf(i);
    // As Caffe: a constant top is filled here, once; the others first in Forward (so the
    // engine RNG is not drawn from at setup).
    refill_[i] = filler.str("type") != "constant";
    if (!refill_[i]) Fill(filler, top[i], Msg(where(), "data_filler of top ", i, ": "));
  }
}

void DummyDataLayer::Forward_cpu(const Tensors&, const Tensors& top) {
  for (size_t i = 0; i < top.size(); ++i) {
    if (refill_[i]) Fill(FillerOf(i), top[i], Msg(where(), "data_filler of top ", i, ": "));
  }
}

}  // namespace caffeonspark
