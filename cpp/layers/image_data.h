// ImageData: images named in a list file. Type "ImageData" (image_data_param,
// transform_param). image_data_param (defaults): source (the list file: one "path label"
// per line, split at the last space), root_folder ("", prefixed to each path as written),
// batch_size (1), shuffle (false), rand_skip (0), new_height / new_width (0: keep the size;
// both or neither), is_color (true: 3 channels BGR, false: 1 gray). Tops data (batch_size,
// C, crop or H, crop or W) and optional label (batch_size). No bottoms, no backward.
// The engine reads no files: a Python feeder thread (python/caffeonspark/data/
// image_list_feeder.py, started by engine.Net) decodes the images with OpenCV, resizes them
// and pushes uint8 batches into feed_queue(); the prefetch thread applies transform_param
// (crop, mirror, mean, scale: docs/CAFFE.md §5.4) natively; Forward pops. The item shape is
// known only from the first image, which Python reads before SetUp and passes as
// image_data_param.image_shape = [C, H, W] (an engine-only field, not in caffe.proto).
// Tests: tests/layers/test_image_data.py.
#pragma once

#include "layers/queue_data.h"

namespace caffeonspark {

class ImageDataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  static constexpr size_t kQueueCapacity = 4;
  const char* type() const override { return "ImageData"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;

 private:
  std::vector<int> shape_;  // (batch_size, C, H', W') after the transform
};

}  // namespace caffeonspark
