// The one table from Caffe type strings to layer classes. Add one line per type.
#include "layers/registry.h"

#include <map>
#include <mutex>

#include "layers/accuracy.h"
#include "layers/argmax.h"
#include "layers/batch_norm.h"
#include "layers/concat_slice.h"
#include "layers/convolution.h"
#include "layers/cos_data.h"
#include "layers/data.h"
#include "layers/distance_loss.h"
#include "layers/dummy_data.h"
#include "layers/eltwise.h"
#include "layers/filter_reindex.h"
#include "layers/im2col_layer.h"
#include "layers/embed.h"
#include "layers/hdf5_data.h"
#include "layers/image_data.h"
#include "layers/inner_product.h"
#include "layers/input.h"
#include "layers/label_loss.h"
#include "layers/lrn.h"
#include "layers/memory_data.h"
#include "layers/mvn.h"
#include "layers/neuron.h"
#include "layers/neuron_extra.h"
#include "layers/neuron_more.h"
#include "layers/parameter.h"
#include "layers/pooling.h"
#include "layers/reduction.h"
#include "layers/recurrent.h"
#include "layers/scale_bias.h"
#include "layers/shape_layers.h"
#include "layers/sigmoid_xent.h"
#include "layers/softmax.h"
#include "layers/tile_crop.h"
#include "layers/spp.h"
#include "layers/window_data.h"

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
      {"ArgMax", Make<ArgMaxLayer>()},
      {"BatchNorm", Make<BatchNormLayer>()},
      {"BatchReindex", Make<BatchReindexLayer>()},
      {"Bias", Make<BiasLayer>()},
      {"BNLL", Make<BNLLLayer>()},
      {"Clip", Make<ClipLayer>()},
      {"Concat", Make<ConcatLayer>()},
      {"ContrastiveLoss", Make<ContrastiveLossLayer>()},
      {"Convolution", Make<ConvolutionLayer>()},
      {"CoSData", Make<CoSDataLayer>()},
      {"Crop", Make<CropLayer>()},
      {"Data", Make<DataLayer>()},
      {"Deconvolution", Make<DeconvolutionLayer>()},
      {"Dropout", Make<DropoutLayer>()},
      {"DummyData", Make<DummyDataLayer>()},
      {"Eltwise", Make<EltwiseLayer>()},
      {"ELU", Make<ELULayer>()},
      {"Embed", Make<EmbedLayer>()},
      {"EuclideanLoss", Make<EuclideanLossLayer>()},
      {"Exp", Make<ExpLayer>()},
      {"Filter", Make<FilterLayer>()},
      {"Flatten", Make<FlattenLayer>()},
      {"HingeLoss", Make<HingeLossLayer>()},
      {"Im2col", Make<Im2colLayer>()},
      {"InfogainLoss", Make<InfogainLossLayer>()},
      {"HDF5Data", Make<HDF5DataLayer>()},
      {"HDF5Output", Make<HDF5OutputLayer>()},
      {"ImageData", Make<ImageDataLayer>()},
      {"InnerProduct", Make<InnerProductLayer>()},
      {"Input", Make<InputLayer>()},
      {"Log", Make<LogLayer>()},
      {"LRN", Make<LRNLayer>()},
      {"LSTM", Make<LSTMLayer>()},
      {"LSTMUnit", Make<LSTMUnitLayer>()},
      {"MemoryData", Make<MemoryDataLayer>()},
      {"MVN", Make<MVNLayer>()},
      {"MultinomialLogisticLoss", Make<MultinomialLogisticLossLayer>()},
      {"Parameter", Make<ParameterLayer>()},
      {"Pooling", Make<PoolingLayer>()},
      {"Power", Make<PowerLayer>()},
      {"PReLU", Make<PReLULayer>()},
      {"Reduction", Make<ReductionLayer>()},
      {"ReLU", Make<ReLULayer>()},
      {"RNN", Make<RNNLayer>()},
      {"Reshape", Make<ReshapeLayer>()},
      {"Scale", Make<ScaleLayer>()},
      {"Sigmoid", Make<SigmoidLayer>()},
      {"SigmoidCrossEntropyLoss", Make<SigmoidCrossEntropyLossLayer>()},
      {"Silence", Make<SilenceLayer>()},
      {"Slice", Make<SliceLayer>()},
      {"Softmax", Make<SoftmaxLayer>()},
      {"SoftmaxWithLoss", Make<SoftmaxWithLossLayer>()},
      {"Split", Make<SplitLayer>()},
      {"Swish", Make<SwishLayer>()},
      {"SPP", Make<SPPLayer>()},
      {"TanH", Make<TanHLayer>()},
      {"Threshold", Make<ThresholdLayer>()},
      {"Tile", Make<TileLayer>()},
      {"WindowData", Make<WindowDataLayer>()},
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
