// The layer registry: one explicit table from Caffe's type string to a constructor
// (cpp/layers/registry.cc). No static self-registration: the linker would drop it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

// Builds the layer for spec.type; an unknown type raises ConfigError naming the layer, its
// prototxt location and the known types.
std::unique_ptr<Layer> CreateLayer(const LayerSpec& spec);
std::vector<std::string> LayerTypes();

}  // namespace caffeonspark
