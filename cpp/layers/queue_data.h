// QueueDataLayer: the base of the data layers fed through native queues (MemoryData, Data,
// CoSData). No bottoms; by default tops data (N, C, H, W) and, optionally, label (N) (CoSData
// overrides the tops and Forward). Each Forward pops one transformed batch from the layer's
// Prefetcher (cpp/data/prefetcher.h) and swaps its buffer into the data top (floats pushed
// as they are are copied), the labels into the label top; no Python runs in Forward, so a
// solver loop with the GIL released never waits on the interpreter. Feeders (Python threads,
// user code) push into feed_queue(); the consumer's waiting time and pop deadline live on
// ready_queue(). Never backward.
// Tests: tests/layers/test_memory_data.py, tests/layers/test_data.py,
// tests/layers/test_cos_data.py.
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
  // Builds the DataTransformer from the layer's transform_param (seeded from the engine RNG)
  // and starts the prefetch thread with queues of `capacity` batches.
  void StartPrefetch(size_t capacity, bool transform_floats);
  // Starts the prefetch thread with a layer-specific process (CoSData). Whatever `process`
  // uses must outlive the thread: derived layers call StopPrefetch() in their destructor.
  void StartPrefetch(size_t capacity, Prefetcher::Process process);
  void StopPrefetch() { prefetcher_.reset(); }
  // A DataTransformer for `transform_param`, seeded from the engine RNG, TRAIN crops in TRAIN.
  std::unique_ptr<DataTransformer> MakeTransformer(const Params& transform_param) const;
  // Output item shape (C, H', W') the transform_param makes of items (C, H, W); call after
  // StartPrefetch(capacity, transform_floats).
  std::vector<int> TransformedShape(int channels, int height, int width) const;
  // The next processed batch (waits up to ready_queue()'s timeout).
  Batch NextBatch();
  // Raises ShapeError when a transformed batch does not fit the layer's tops.
  virtual void CheckBatch(const Batch& batch) const = 0;

  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}

 private:
  std::unique_ptr<DataTransformer> transformer_;  // declared first: outlives the thread
  std::unique_ptr<Prefetcher> prefetcher_;
};

}  // namespace caffeonspark
