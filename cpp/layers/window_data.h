// WindowData: R-CNN's window sampler. Type "WindowData" (window_data_param,
// transform_param). window_data_param (defaults): source (the window file), root_folder
// (""), batch_size, fg_threshold (0.5), bg_threshold (0.5), fg_fraction (0.25),
// context_pad (0), crop_mode ("warp" or "square"), cache_images (false). transform_param:
// crop_size (> 0, required), mirror, scale, mean_file or mean_value.
// Tops data (batch_size, C, crop_size, crop_size) and label (batch_size).
// Each batch holds batch_size - floor(batch_size * fg_fraction) background windows (label
// 0) followed by floor(batch_size * fg_fraction) foreground ones, each drawn uniformly
// with replacement; a window is foreground when its overlap >= fg_threshold, background
// when < bg_threshold (docs/DATA.md "WindowData"). The window (grown by context_pad, made
// square in "square" mode) is cut from the image, warped bilinearly to crop_size, flipped
// with probability 1/2 when mirror, mean-subtracted and scaled; where the grown window
// leaves the image the output stays 0.
// The engine reads no files: a Python feeder thread (python/caffeonspark/data/
// window_feeder.py, started by engine.Net) does all of this and pushes float32 batches
// into feed_queue(); Forward pops them unchanged. The image channel count is read from the
// window file by Python and passed as window_data_param.image_channels (engine-only).
// Tests: tests/layers/test_window_data.py.
#pragma once

#include "layers/queue_data.h"

namespace caffeonspark {

class WindowDataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  static constexpr size_t kQueueCapacity = 4;
  const char* type() const override { return "WindowData"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;

 private:
  std::vector<int> shape_;  // (batch_size, C, crop_size, crop_size)
};

}  // namespace caffeonspark
