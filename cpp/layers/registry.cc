// The one table from Caffe type strings to layer classes. Add one line per type.
#include "layers/registry.h"

#include <functional>
#include <map>

#include "layers/convolution.h"
#include "layers/inner_product.h"
#include "layers/input.h"
#include "layers/lrn.h"
#include "layers/neuron.h"
#include "layers/pooling.h"
#include "layers/softmax.h"

namespace caffeonspark {

namespace {

using Factory = std::function<std::unique_ptr<Layer>(const LayerSpec&)>;

template <typename LayerClass>
Factory Make() {
  return [](const LayerSpec& spec) { return std::make_unique<LayerClass>(spec); };
}

const std::map<std::string, Factory>& Table() {
  static const std::map<std::string, Factory> table = {
      {"Convolution", Make<ConvolutionLayer>()},
      {"Deconvolution", Make<DeconvolutionLayer>()},
      {"InnerProduct", Make<InnerProductLayer>()},
      {"Input", Make<InputLayer>()},
      {"LRN", Make<LRNLayer>()},
      {"Pooling", Make<PoolingLayer>()},
      {"ReLU", Make<ReLULayer>()},
      {"Softmax", Make<SoftmaxLayer>()},
      {"SoftmaxWithLoss", Make<SoftmaxWithLossLayer>()},
  };
  return table;
}

}  // namespace

std::unique_ptr<Layer> CreateLayer(const LayerSpec& spec) {
  auto it = Table().find(spec.type);
  if (it == Table().end()) {
    std::string known;
    for (const auto& [type, factory] : Table()) known += (known.empty() ? "" : ", ") + type;
    throw ConfigError(Msg("layer '", spec.name, "'", spec.where.empty() ? "" : " at ", spec.where,
                          ": unknown layer type '", spec.type, "' (known types: ", known, ")"));
  }
  return it->second(spec);
}

std::vector<std::string> LayerTypes() {
  std::vector<std::string> out;
  for (const auto& [type, factory] : Table()) out.push_back(type);
  return out;
}

}  // namespace caffeonspark
