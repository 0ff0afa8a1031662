// The one table from Caffe type strings to layer classes. Add one line per type.
#include "layers/registry.h"

#include <map>
#include <mutex>

#include "layers/accuracy.h"
#include "layers/concat_slice.h"
#include "layers/convolution.h"
#include "layers/cos_data.h"
#include "layers/data.h"
#include "layers/distance_loss.h"
#include "layers/eltwise.h"
#include "layers/inner_product.h"
#include "layers/input.h"
#include "layers/lrn.h"
#include "layers/memory_data.h"
#include "layers/neuron.h"
#include "layers/neuron_extra.h"
#include "layers/pooling.h"
#include "layers/scale_bias.h"
#include "layers/shape_layers.h"
#include "layers/softmax.h"

namespace caffeonspark {

namespace {

using Factory = LayerFactory;

template <typename LayerClass>
Factory Make() {
  return [](const LayerSpec& spec) { return std::make_unique<LayerClass>(spec); };
}

const std::map<std::string, Factory>& Table() {
  static const std::map<std::string, Factory> table = {
      {"AbsVal", Make<AbsValLayer>()},
      {"Accuracy", Make<AccuracyLayer>()},
      {"Bias", Make<BiasLayer>()},
      {"BNLL", Make<BNLLLayer>()},
      {"Concat", Make<ConcatLayer>()},
      {"ContrastiveLoss", Make<ContrastiveLossLayer>()},
      {"Convolution", Make<ConvolutionLayer>()},
      {"CoSData", Make<CoSDataLayer>()},
      {"Data", Make<DataLayer>()},
      {"Deconvolution", Make<DeconvolutionLayer>()},
      {"Dropout", Make<DropoutLayer>()},
      {"Eltwise", Make<EltwiseLayer>()},
      {"ELU", Make<ELULayer>()},
      {"EuclideanLoss", Make<EuclideanLossLayer>()},
      {"Exp", Make<ExpLayer>()},
      {"Flatten", Make<FlattenLayer>()},
      {"InnerProduct", Make<InnerProductLayer>()},
      {"Input", Make<InputLayer>()},
      {"Log", Make<LogLayer>()},
      {"LRN", Make<LRNLayer>()},
      {"MemoryData", Make<MemoryDataLayer>()},
      {"Pooling", Make<PoolingLayer>()},
      {"Power", Make<PowerLayer>()},
      {"PReLU", Make<PReLULayer>()},
      {"ReLU", Make<ReLULayer>()},
      {"Reshape", Make<ReshapeLayer>()},
      {"Scale", Make<ScaleLayer>()},
      {"Sigmoid", Make<SigmoidLayer>()},
      {"Silence", Make<SilenceLayer>()},
      {"Slice", Make<SliceLayer>()},
      {"Softmax", Make<SoftmaxLayer>()},
      {"SoftmaxWithLoss", Make<SoftmaxWithLossLayer>()},
      {"Split", Make<SplitLayer>()},
      {"TanH", Make<TanHLayer>()},
  };
  return table;
}

// Types registered at run time (RegisterLayerType), guarded by their own mutex.
std::mutex& ExternalMutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, Factory>& External() {
  static std::map<std::string, Factory> table;
  return table;
}

}  // namespace

void RegisterLayerType(const std::string& type, LayerFactory factory) {
  COS_CHECK(Table().count(type) == 0, InternalError, "layer type '", type,
            "' is built into the engine and cannot be registered again");
  std::lock_guard<std::mutex> lock(ExternalMutex());
  External()[type] = std::move(factory);
}

std::unique_ptr<Layer> CreateLayer(const LayerSpec& spec) {
  auto it = Table().find(spec.type);
  if (it == Table().end()) {
    Factory external;
    {
      std::lock_guard<std::mutex> lock(ExternalMutex());
      auto found = External().find(spec.type);
      if (found != External().end()) external = found->second;
    }
    if (external) return external(spec);
    std::string known;
    for (const auto& type : LayerTypes()) known += (known.empty() ? "" : ", ") + type;
    throw ConfigError(Msg("layer '", spec.name, "'", spec.where.empty() ? "" : " at ", spec.where,
                          ": unknown layer type '", spec.type, "' (known types: ", known, ")"));
  }
  return it->second(spec);
}

std::vector<std::string> LayerTypes() {
  std::map<std::string, bool> types;
  for (const auto& [type, factory] : Table()) types[type] = true;
  {
    std::lock_guard<std::mutex> lock(ExternalMutex());
    for (const auto& [type, factory] : External()) types[type] = true;
  }
  std::vector<std::string> out;
  for (const auto& [type, flag] : types) out.push_back(type);
  return out;
}

}  // namespace caffeonspark
