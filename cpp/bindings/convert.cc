#include "bindings/convert.h"

#include <pybind11/stl.h>

#include "core/errors.h"

namespace caffeonspark::py_bind {

namespace {

Params::Value ToValue(const py::handle& item, const std::string& context);

void AddField(Params& params, const std::string& key, const py::handle& value,
              const std::string& context) {
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    params.declare(key);
    for (const py::handle& item : value) params.add(key, ToValue(item, context + "." + key));
  } else {
    params.add(key, ToValue(value, context + "." + key));
  }
}

Params::Value ToValue(const py::handle& item, const std::string& context) {
  if (py::isinstance<py::bool_>(item)) return item.cast<bool>();
  if (py::isinstance<py::int_>(item) || py::isinstance<py::float_>(item)) return item.cast<double>();
  if (py::isinstance<py::str>(item)) return item.cast<std::string>();
  if (py::isinstance<py::bytes>(item)) return item.cast<std::string>();
  if (py::isinstance<py::dict>(item))
    return std::make_shared<Params>(ToParams(item.cast<py::dict>(), context));
  throw ConfigError(Msg(context, ": unsupported parameter value of type ",
                        std::string(py::str(py::type::of(item).attr("__name__")))));
}

}  // namespace

Params ToParams(const py::dict& dict, const std::string& context) {
  Params params;
  params.set_context(context);
  for (const auto& [key, value] : dict) {
    AddField(params, key.cast<std::string>(), value, context);
  }
  return params;
}

LayerSpec ToLayerSpec(const py::dict& d) {
  LayerSpec spec;
  spec.name = d["name"].cast<std::string>();
  spec.type = d["type"].cast<std::string>();
  spec.bottoms = d["bottoms"].cast<std::vector<std::string>>();
  spec.tops = d["tops"].cast<std::vector<std::string>>();
  spec.phase = d["phase"].cast<int>() == 0 ? Phase::kTrain : Phase::kTest;
  spec.loss_weights = d["loss_weights"].cast<std::vector<float>>();
  spec.propagate_down = d["propagate_down"].cast<std::vector<bool>>();
  spec.where = d["where"].cast<std::string>();
  for (const py::handle& p : d["param_specs"]) {
    py::dict pd = p.cast<py::dict>();
    ParamSpecInfo info;
    info.name = pd["name"].cast<std::string>();
    info.permissive = pd["permissive"].cast<bool>();
    info.lr_mult = pd["lr_mult"].cast<float>();
    info.decay_mult = pd["decay_mult"].cast<float>();
    info.has_lr_mult = pd["has_lr_mult"].cast<bool>();
    info.has_decay_mult = pd["has_decay_mult"].cast<bool>();
    spec.param_specs.push_back(info);
  }
  std::string context = Msg("layer '", spec.name, "' (", spec.type, ")");
  spec.params = ToParams(d["params"].cast<py::dict>(), context);
  return spec;
}

py::array TensorView(const Tensor& tensor, bool diff) {
  const auto& memory = diff ? tensor.diff_memory() : tensor.data_memory();
  std::vector<py::ssize_t> shape(tensor.shape().begin(), tensor.shape().end());
  if (!memory) return py::array_t<float>(shape);
  auto* owner = new std::shared_ptr<SyncedMemory>(memory);
  py::capsule base(owner, [](void* p) { delete static_cast<std::shared_ptr<SyncedMemory>*>(p); });
  float* ptr = static_cast<float*>((*owner)->mutable_host_data());
  return py::array_t<float>(shape, ptr, base);
}

}  // namespace caffeonspark::py_bind
