// QueueDataLayer: the base of the data layers fed through native queues (MemoryData, Data).
// No bottoms; tops data (N, C, H, W) and, optionally, label (N). Each Forward pops one
// transformed batch from the layer's Prefetcher (cpp/data/prefetcher.h) and swaps its buffer
// into the data top (floats pushed as they are are copied), the labels into the label top; no Python runs in Forward, so a solver loop with the GIL released never waits on
// the interpreter. Feeders (Python threads, user code) push into feed_queue(); the consumer's
// waiting time and pop deadline live on ready_queue(). Never backward.
// Tests: tests/layers/test_memory_data.py, tests/layers/test_data.py.
#pragma once

#include <memory>
#include <vector>

#include "data/prefetcher.h"
#include "layers/layer.h"

namespace caffeonspark {

class QueueDataLayer : public Layer {
 public:
  using Layer::Layer;
  int ExactNumBottomBlobs() const override { return 0; }
  int MinTopBlobs() const override { return 1; }
  int MaxTopBlobs() const override { return 2; }
  bool IsDataLayer() const override { return true; }
  void Reshape(const Tensors&, const Tensors&) override {}

  // Where feeders push raw uint8 or float batches.
  const std::shared_ptr<BatchQueue>& feed_queue() const;
  // What Forward pops: its pop_timeout, wait_seconds and pops.
  const std::shared_ptr<BatchQueue>& ready_queue() const;

 protected:
  // Builds the DataTransformer from transform_param (seeded from the engine RNG) and starts
  // the prefetch thread with queues of `capacity` batches.
  void StartPrefetch(size_t capacity, bool transform_floats);
  // Output item shape (C, H', W') the transform_param makes of items (C, H, W); call after
  // StartPrefetch.
  std::vector<int> TransformedShape(int channels, int height, int width) const;
  // Raises ShapeError when a transformed batch does not fit the layer's tops.
  virtual void CheckBatch(const Batch& batch) const = 0;

  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}

 private:
  std::unique_ptr<DataTransformer> MakeTransformer() const;

  std::unique_ptr<Prefetcher> prefetcher_;
};

}  // namespace caffeonspark
