// MemoryData: batches pushed from the host. Type "MemoryData" (memory_data_param):
// batch_size, channels, height, width (all required, > 0). Tops data (batch_size, channels,
// height, width) and optional label (batch_size). No bottoms, no backward.
// Feeding: Python gets the layer's feeder with engine.Net.memory_data_feeder(name) and
// pushes (data, labels) arrays (python/caffeonspark/data/feeders.py):
//   - uint8 images (N, C, h, w): the layer's transform_param is applied natively (with
//     crop_size, h and w may exceed height = width = crop_size; Caffe's rule);
//   - float32 arrays (N, C, height, width): taken as they are (already preprocessed), which
//     is why pushing floats into a layer with a non-identity transform_param is refused.
// Each Forward pops one batch; a push of k * batch_size items makes k batches. The queue
// holds kQueueCapacity batches (the feeder can change it); Forward waits up to the feeder's
// timeout, then raises IoError naming the layer.
// Tests: tests/layers/test_memory_data.py.
#pragma once

#include "layers/queue_data.h"

namespace caffeonspark {

class MemoryDataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  static constexpr size_t kQueueCapacity = 4;
  const char* type() const override { return "MemoryData"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;

 private:
  std::vector<int> shape_;  // (batch_size, channels, height, width)
};

}  // namespace caffeonspark
