#include "layers/hdf5_data.h"

#include <algorithm>

namespace caffeonspark {

namespace {

int64_t CountFrom(const std::vector<int>& shape, size_t from) {
  int64_t count = 1;
  for (size_t i = from; i < shape.size(); ++i) count *= shape[i];
  return count;
}

// Caffe's legacy 4-D view of a blob: (num, channels, height, width), missing axes 1.
std::vector<int> Legacy4d(const Tensor& t) {
  std::vector<int> shape(4, 1);
  for (int a = 0; a < std::min(4, t.num_axes()); ++a) shape[a] = t.shape(a);
  return shape;
}

}  // namespace

void HDF5DataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("hdf5_data_param");
  COS_LAYER_CHECK(p.size("source") && !p.str("source").empty(), ConfigError,
                  "hdf5_data_param.source (the file listing .h5 files) is missing");
  const int batch_size = static_cast<int>(p.number_or("batch_size", 0));
  COS_LAYER_CHECK(batch_size > 0, ConfigError, "hdf5_data_param.batch_size must be positive, got ",
                  batch_size);
  COS_LAYER_CHECK(p.size("top_shapes") == top.size(), ConfigError,
                  "hdf5_data_param.top_shapes (one per top) is missing: the Python Net wrapper "
                  "(caffeonspark.engine.Net) reads them from the first file of ", p.str("source"));
  shapes_.clear();
  for (size_t i = 0; i < top.size(); ++i) {
    std::vector<int> shape = {batch_size};
    for (int d : p.child("top_shapes", i).integers("dim")) shape.push_back(d);
    shapes_.push_back(shape);
    top[i]->Reshape(shape);
  }
  StartPrefetch(kQueueCapacity,
                [this](Batch batch, Prefetcher&) { return Process(std::move(batch)); });
}

Batch HDF5DataLayer::Process(Batch batch) const {
  COS_LAYER_CHECK(batch.tops.size() == shapes_.size(), ShapeError, "a fed batch holds ",
                  batch.tops.size(), " arrays; the layer has ", shapes_.size(), " tops");
  for (size_t i = 0; i < shapes_.size(); ++i) {
    Batch& fed = batch.tops[i];
    const int64_t want = CountFrom(shapes_[i], 0);
    COS_LAYER_CHECK(!fed.raw && static_cast<int64_t>(fed.values.size()) == want &&
                        fed.num() == shapes_[i][0],
                    ShapeError, "top ", i, " was fed ", fed.values.size(), " float values in ",
                    fed.num(), " rows; it takes ", want, " in ", shapes_[i][0], " rows");
    fed.shape = shapes_[i];
  }
  return batch;
}

void HDF5DataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.tops.size() == shapes_.size(), InternalError, "a processed batch holds ",
                  batch.tops.size(), " tops for ", shapes_.size());
}

void HDF5DataLayer::Forward_cpu(const Tensors&, const Tensors& top) {
  Batch batch = NextBatch();
  CheckBatch(batch);
  for (size_t i = 0; i < top.size(); ++i) {
    top[i]->Reshape(batch.tops[i].shape);
    std::copy(batch.tops[i].values.begin(), batch.tops[i].values.end(), top[i]->mutable_data());
  }
}

HDF5OutputLayer::HDF5OutputLayer(LayerSpec spec) : Layer(std::move(spec)) {
  queue_ = std::make_shared<BatchQueue>(where(), kQueueCapacity);
}

void HDF5OutputLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("hdf5_output_param");
  COS_LAYER_CHECK(p.size("file_name") && !p.str("file_name").empty(), ConfigError,
                  "hdf5_output_param.file_name is missing");
}

void HDF5OutputLayer::Reshape(const Tensors& bottom, const Tensors&) {
  COS_LAYER_CHECK(bottom[0]->num_axes() >= 1 && bottom[1]->num_axes() >= 1 &&
                      bottom[0]->shape(0) == bottom[1]->shape(0),
                  ShapeError, "data ", bottom[0]->shape_string(), " and label ",
                  bottom[1]->shape_string(), " must have the same first dimension");
  COS_LAYER_CHECK(bottom[0]->num_axes() <= 4 && bottom[1]->num_axes() <= 4, ShapeError,
                  "writes Caffe's 4-D (N, C, H, W) datasets; data ", bottom[0]->shape_string(),
                  " or label ", bottom[1]->shape_string(), " has more axes");
}

void HDF5OutputLayer::Forward_cpu(const Tensors& bottom, const Tensors&) {
  Batch batch;
  batch.shape = {bottom[0]->shape(0)};
  for (int b = 0; b < 2; ++b) {
    Batch part;
    part.shape = Legacy4d(*bottom[b]);
    part.values.assign(bottom[b]->data(), bottom[b]->data() + bottom[b]->count());
    batch.tops.push_back(std::move(part));
  }
  const BatchQueue::PushResult result = queue_->Push(std::move(batch), queue_->pop_timeout());
  COS_LAYER_CHECK(result != BatchQueue::PushResult::kTimedOut, IoError, "the HDF5 writer took "
                  "no batch for ", queue_->pop_timeout(), " s (is its thread running?)");
  if (result == BatchQueue::PushResult::kClosed) {
    // The writer closed the queue: drain it, which raises the writer's error (or "closed").
    for (;;) queue_->Pop(0);
  }
}

}  // namespace caffeonspark
