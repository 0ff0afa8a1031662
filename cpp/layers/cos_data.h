// CoSData: CaffeOnSpark's data layer with typed tops. Type "CoSData" (cos_data_param):
// batch_size (> 0) and one `top` entry per top blob, matched by position. Each entry:
//   type: STRING, INT, FLOAT (one number per item), INT_ARRAY, FLOAT_ARRAY (numbers per
//     item), RAW_IMAGE, ENCODED_IMAGE, ENCODED_IMAGE_WITH_DIM (images, fed as uint8);
//   channels, height, width: the item as fed, of which the first sample_num_axes (0-3,
//     default 3; images need 3) are used, the rest count as 1; one-number types need a
//     single value per item;
//   transform_param: applied natively on the prefetch thread (images always, numbers when
//     not the identity); out_channels/out_height/out_width (0 = the input's) must equal
//     the transform's output when given;
//   transpose (sample_num_axes 1 only): the top is (C, N) instead of (N, C), the layout
//     recurrent layers take (time-major).
// Top shape: transpose ? (C', N) : (N, C', H', W') cut to 1 + sample_num_axes axes.
// The engine reads no files: a Python feeder (python/caffeonspark/data/cos_feeder.py,
// started by engine.Net) reads the rows and pushes one multi-top batch per Forward into
// feed_queue(): one (N, C, H, W) array per top, uint8 for images, float32 otherwise.
// No bottoms, no backward. Tests: tests/layers/test_cos_data.py.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/queue_data.h"

namespace caffeonspark {

class CoSDataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  ~CoSDataLayer() override { StopPrefetch(); }  // the thread uses tops_
  static constexpr size_t kQueueCapacity = 4;
  const char* type() const override { return "CoSData"; }
  int MaxTopBlobs() const override { return -1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;

 private:
  struct Top {
    std::string name;                // cos_data_param.top[i].name (the DataFrame column)
    std::string type;                // DataType name
    bool image = false;
    std::vector<int> item;           // (C, H, W) as fed, 1 beyond sample_num_axes
    std::vector<int> shape;          // the top blob's shape
    bool transpose = false;
    bool transform = false;          // run the transformer (images always)
    std::unique_ptr<DataTransformer> transformer;
    std::string label() const;       // "top 0 'data' (RAW_IMAGE)"
  };

  Top MakeTop(const Params& p, int index, int batch_size) const;
  Batch Process(Batch batch);
  Batch ProcessTop(Top& top, Batch fed, int num) const;

  int batch_size_ = 0;
  std::vector<Top> tops_;
};

}  // namespace caffeonspark
