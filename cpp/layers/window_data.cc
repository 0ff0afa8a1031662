#include "layers/window_data.h"

namespace caffeonspark {

void WindowDataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("window_data_param");
  COS_LAYER_CHECK(p.size("source") && !p.str("source").empty(), ConfigError,
                  "window_data_param.source (the window file) is missing");
  const int batch_size = static_cast<int>(p.number_or("batch_size", 0));
  COS_LAYER_CHECK(batch_size > 0, ConfigError,
                  "window_data_param.batch_size must be positive, got ", batch_size);
  const std::string mode = p.size("crop_mode") ? p.str("crop_mode") : "warp";
  COS_LAYER_CHECK(mode == "warp" || mode == "square", ConfigError,
                  "window_data_param.crop_mode must be \"warp\" or \"square\", got \"", mode, "\"");
  const float fg_fraction = static_cast<float>(p.number_or("fg_fraction", 0.25));
  COS_LAYER_CHECK(fg_fraction >= 0 && fg_fraction <= 1, ConfigError,
                  "window_data_param.fg_fraction must be in [0, 1], got ", fg_fraction);
  const Params* transform =
      spec_.params.has("transform_param") ? &spec_.params.child("transform_param") : nullptr;
  const int crop = transform ? static_cast<int>(transform->number_or("crop_size", 0)) : 0;
  COS_LAYER_CHECK(crop > 0, ConfigError, "transform_param.crop_size (the warped window size) "
                  "must be positive, got ", crop);
  const int context_pad = static_cast<int>(p.number_or("context_pad", 0));
  COS_LAYER_CHECK(context_pad >= 0 && 2 * context_pad < crop, ConfigError,
                  "window_data_param.context_pad must be in [0, crop_size / 2), got ", context_pad);
  const int channels = static_cast<int>(p.number_or("image_channels", 0));
  COS_LAYER_CHECK(channels > 0, ConfigError, "window_data_param.image_channels is missing: the "
                  "Python Net wrapper (caffeonspark.engine.Net) reads it from ", p.str("source"));
  // The feeder pushes finished float batches: nothing to transform here.
  StartPrefetch(kQueueCapacity,
                Prefetcher::Process([](Batch batch, Prefetcher&) { return batch; }));
  shape_ = {batch_size, channels, crop, crop};
  top[0]->Reshape(shape_);
  if (top.size() > 1) top[1]->Reshape({batch_size});
}

void WindowDataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.tops.empty() && !batch.raw && batch.shape == shape_ &&
                      batch.labels.size() == static_cast<size_t>(shape_[0]) &&
                      batch.values.size() == static_cast<size_t>(batch.item_count()) * shape_[0],
                  ShapeError, "a fed batch must be float32 (", shape_[0], ", ", shape_[1], ", ",
                  shape_[2], ", ", shape_[3], ") with ", shape_[0], " labels");
}

}  // namespace caffeonspark
