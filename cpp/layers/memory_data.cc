#include "layers/memory_data.h"

namespace caffeonspark {

void MemoryDataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("memory_data_param");
  shape_ = {static_cast<int>(p.number_or("batch_size", 0)),
            static_cast<int>(p.number_or("channels", 0)),
            static_cast<int>(p.number_or("height", 0)), static_cast<int>(p.number_or("width", 0))};
  for (int dim : shape_) {
    COS_LAYER_CHECK(dim > 0, ConfigError, "memory_data_param batch_size, channels, height and "
                    "width must all be given and positive, got (", shape_[0], ", ", shape_[1],
                    ", ", shape_[2], ", ", shape_[3], ")");
  }
  if (spec_.params.has("transform_param")) {
    int crop = static_cast<int>(spec_.params.child("transform_param").number_or("crop_size", 0));
    COS_LAYER_CHECK(crop == 0 || (crop == shape_[2] && crop == shape_[3]), ConfigError,
                    "with transform_param.crop_size ", crop, " memory_data_param height and width "
                    "must both equal the crop size (they are the cropped output), got ",
                    shape_[2], " x ", shape_[3]);
  }
  StartPrefetch(kQueueCapacity, /*transform_floats=*/false);
  top[0]->Reshape(shape_);
  if (top.size() > 1) top[1]->Reshape({shape_[0]});
}

void MemoryDataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.shape == shape_, ShapeError, "a pushed batch of shape (", batch.shape[0],
                  ", ", batch.shape[1], ", ", batch.shape[2], ", ", batch.shape[3],
                  ") after its transform does not match memory_data_param (", shape_[0], ", ",
                  shape_[1], ", ", shape_[2], ", ", shape_[3], ")");
}

}  // namespace caffeonspark
