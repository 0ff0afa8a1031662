#include "layers/queue_data.h"

#include <algorithm>

#include "core/rng.h"

namespace caffeonspark {

namespace {

const Params& TransformParam(const LayerSpec& spec) {
  static const Params kEmpty;
  return spec.params.has("transform_param") ? spec.params.child("transform_param") : kEmpty;
}

}  // namespace

std::unique_ptr<DataTransformer> QueueDataLayer::MakeTransformer(const Params& param) const {
  uint32_t seed = static_cast<uint32_t>(rng()());
  return std::make_unique<DataTransformer>(param, phase_ == Phase::kTrain, where(), seed);
}

std::vector<int> QueueDataLayer::TransformedShape(int channels, int height, int width) const {
  COS_CHECK(transformer_, InternalError, where(), "is not set up yet");
  return transformer_->OutputShape(channels, height, width);
}

void QueueDataLayer::StartPrefetch(size_t capacity, bool transform_floats) {
  transformer_ = MakeTransformer(TransformParam(spec_));
  DataTransformer* transformer = transformer_.get();
  std::string owner = where();
  StartPrefetch(capacity, [owner, transformer, transform_floats](Batch batch, Prefetcher& pool) {
    return Prefetcher::TransformBatch(owner, *transformer, transform_floats, std::move(batch),
                                      pool);
  });
}

void QueueDataLayer::StartPrefetch(size_t capacity, Prefetcher::Process process) {
  prefetcher_ = std::make_unique<Prefetcher>(where(), capacity, std::move(process));
}

Batch QueueDataLayer::NextBatch() {
  COS_CHECK(prefetcher_, InternalError, where(), "is not set up yet");
  return prefetcher_->Next();
}

const std::shared_ptr<BatchQueue>& QueueDataLayer::feed_queue() const {
  COS_CHECK(prefetcher_, InternalError, where(), "is not set up yet");
  return prefetcher_->input();
}

const std::shared_ptr<BatchQueue>& QueueDataLayer::ready_queue() const {
  COS_CHECK(prefetcher_, InternalError, where(), "is not set up yet");
  return prefetcher_->ready();
}

void QueueDataLayer::Forward_cpu(const Tensors&, const Tensors& top) {
  Batch batch = NextBatch();
  CheckBatch(batch);
  top[0]->Reshape(batch.shape);
  if (batch.memory) {
    // The prefetched buffer becomes the top's data; the top's old buffer goes back to the
    // prefetcher for a later batch (Caffe's prefetch layers swap their batches in likewise).
    prefetcher_->Recycle(top[0]->SwapData(std::move(batch.memory)));
  } else {
    std::copy(batch.values.begin(), batch.values.end(), top[0]->mutable_data());
  }
  if (top.size() > 1) {
    top[1]->Reshape({batch.num()});
    std::copy(batch.labels.begin(), batch.labels.end(), top[1]->mutable_data());
  }
}

}  // namespace caffeonspark
