#include "layers/image_data.h"

namespace caffeonspark {

void ImageDataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("image_data_param");
  COS_LAYER_CHECK(p.size("source") && !p.str("source").empty(), ConfigError,
                  "image_data_param.source (the list file) is missing");
  const int batch_size = static_cast<int>(p.number_or("batch_size", 1));
  COS_LAYER_CHECK(batch_size > 0, ConfigError, "image_data_param.batch_size must be positive, got ",
                  batch_size);
  const int new_height = static_cast<int>(p.number_or("new_height", 0));
  const int new_width = static_cast<int>(p.number_or("new_width", 0));
  COS_LAYER_CHECK((new_height == 0 && new_width == 0) || (new_height > 0 && new_width > 0),
                  ConfigError, "image_data_param.new_height and new_width must be set together "
                  "(both > 0) or not at all, got ", new_height, " x ", new_width);
  std::vector<int> image = p.integers("image_shape");
  COS_LAYER_CHECK(image.size() == 3, ConfigError,
                  "image_data_param.image_shape [C, H, W] is missing: the Python Net wrapper "
                  "(caffeonspark.engine.Net) reads it from the first image of ", p.str("source"));
  StartPrefetch(kQueueCapacity, /*transform_floats=*/true);
  std::vector<int> item = TransformedShape(image[0], image[1], image[2]);
  shape_ = {batch_size, item[0], item[1], item[2]};
  top[0]->Reshape(shape_);
  if (top.size() > 1) top[1]->Reshape({batch_size});
}

void ImageDataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.shape == shape_, ShapeError, "a batch of shape (", batch.shape[0], ", ",
                  batch.shape[1], ", ", batch.shape[2], ", ", batch.shape[3],
                  ") after its transform does not match the layer's top (", shape_[0], ", ",
                  shape_[1], ", ", shape_[2], ", ", shape_[3], ")");
}

}  // namespace caffeonspark
