// The layer registry: one explicit table from Caffe's type string to a constructor
// (cpp/layers/registry.cc). No static self-registration: the linker would drop it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

// Builds the layer for spec.type; an unknown type raises ConfigError naming the layer, its
// prototxt location and the known types.
std::unique_ptr<Layer> CreateLayer(const LayerSpec& spec);
std::vector<std::string> LayerTypes();

// Types supplied from outside the engine core, registered once when the extension module
// is initialised: the bindings add "Python" (cpp/bindings/python_layer.h), so the core
// never depends on Python. A type in the table above cannot be replaced.
using LayerFactory = std::function<std::unique_ptr<Layer>(const LayerSpec&)>;
void RegisterLayerType(const std::string& type, LayerFactory factory);

}  // namespace caffeonspark
