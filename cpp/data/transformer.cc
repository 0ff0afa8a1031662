// DataTransformer (rules in transformer.h). Tests: tests/data/test_transformer.py.
#include "data/transformer.h"

#include <cstring>

#include "core/errors.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {

// One output row: d[x] = (s[x] - mean) * scale, written reversed when mirrored. Separate
// loops per case so each one vectorizes (no per-pixel branches); the arithmetic is the same
// float expression in every case, so results do not depend on which loop ran.
inline float MeanAt(const float* mean, int x) { return mean[x]; }
inline float MeanAt(float mean, int) { return mean; }

template <typename T, typename Mean>
void TransformRow(const T* s, Mean mean, float scale, int width, bool mirror, float* d) {
  if (mirror) {
    float* last = d + width - 1;
    for (int x = 0; x < width; ++x) last[-x] = (static_cast<float>(s[x]) - MeanAt(mean, x)) * scale;
  } else {
    for (int x = 0; x < width; ++x) d[x] = (static_cast<float>(s[x]) - MeanAt(mean, x)) * scale;
  }
}

}  // namespace

DataTransformer::DataTransformer(const Params& p, bool train, std::string owner, uint32_t seed)
    : owner_(std::move(owner)),
      train_(train),
      scale_(static_cast<float>(p.number_or("scale", 1.0))),
      mirror_(p.number_or("mirror", 0.0) != 0),
      crop_size_(static_cast<int>(p.number_or("crop_size", 0.0))),
      rng_(seed) {
  COS_CHECK(crop_size_ >= 0, ConfigError, owner_, "transform_param.crop_size must be >= 0, got ",
            crop_size_);
  if (p.size("mean_file")) mean_file_ = p.str("mean_file");
  mean_values_ = p.reals("mean_value");
  COS_CHECK(mean_file_.empty() || mean_values_.empty(), ConfigError, owner_,
            "transform_param sets both mean_file and mean_value; give only one of them");
  if (mean_file_.empty()) return;
  COS_CHECK(p.size("mean_file_data"), ConfigError, owner_, "mean_file '", mean_file_,
            "' was not loaded (build nets through caffeonspark.engine.Net, which reads it)");
  const Params& blob = p.child("mean_file_data");
  mean_shape_ = blob.integers("shape");
  const std::string& bytes = blob.str("data");
  COS_CHECK(mean_shape_.size() == 3, ShapeError, owner_, "mean_file '", mean_file_,
            "' must hold one (C, H, W) image, got ", mean_shape_.size(), " axes");
  size_t count = static_cast<size_t>(mean_shape_[0]) * mean_shape_[1] * mean_shape_[2];
  COS_CHECK(bytes.size() == count * sizeof(float), FormatError, owner_, "mean_file '", mean_file_,
            "' holds ", bytes.size() / sizeof(float), " values for ", count, " pixels");
  mean_data_.resize(count);
  std::memcpy(mean_data_.data(), bytes.data(), bytes.size());
}

std::vector<int> DataTransformer::OutputShape(int channels, int height, int width) const {
  COS_CHECK(mean_values_.size() <= 1 || static_cast<int>(mean_values_.size()) == channels,
            ConfigError, owner_, "transform_param has ", mean_values_.size(),
            " mean_value entries for ", channels, " channels (give 1 or one per channel)");
  if (!mean_shape_.empty()) {
    COS_CHECK(mean_shape_ == (std::vector<int>{channels, height, width}), ShapeError, owner_,
              "mean_file '", mean_file_, "' has shape (", mean_shape_[0], ", ", mean_shape_[1],
              ", ", mean_shape_[2], ") but the data items are (", channels, ", ", height, ", ",
              width, ")");
  }
  if (crop_size_ == 0) return {channels, height, width};
  COS_CHECK(crop_size_ <= height && crop_size_ <= width, ShapeError, owner_, "crop_size ",
            crop_size_, " is larger than the data items (", height, " x ", width, ")");
  return {channels, crop_size_, crop_size_};
}

TransformChoice DataTransformer::Pick(int height, int width) {
  TransformChoice choice;
  if (mirror_) choice.mirror = std::uniform_int_distribution<int>(0, 1)(rng_) == 1;
  if (crop_size_ == 0) return choice;
  if (train_) {
    choice.h_off = std::uniform_int_distribution<int>(0, height - crop_size_)(rng_);
    choice.w_off = std::uniform_int_distribution<int>(0, width - crop_size_)(rng_);
  } else {
    choice.h_off = (height - crop_size_) / 2;
    choice.w_off = (width - crop_size_) / 2;
  }
  return choice;
}

template <typename T>
void DataTransformer::Transform(const T* in, int num, int channels, int height, int width,
                                float* out, std::vector<TransformChoice>* choices) {
  const std::vector<int> out_shape = OutputShape(channels, height, width);
  const int out_h = out_shape[1], out_w = out_shape[2];
  std::vector<TransformChoice> picks(num);
  for (auto& pick : picks) pick = Pick(height, width);  // serial: the draws do not depend on threads
  const int64_t in_count = static_cast<int64_t>(channels) * height * width;
  const int64_t out_count = static_cast<int64_t>(channels) * out_h * out_w;
  const float* mean_file = mean_data_.empty() ? nullptr : mean_data_.data();
  const float scale = scale_;

  // Idle workers of this (prefetch-thread) team yield quickly: python/caffeonspark/_native.py
  // bounds libgomp's spinning, which otherwise took the cores the feeders need.
  ParallelFor(num, num * out_count, [&](int64_t i) {
    const T* src = in + i * in_count;
    float* dst = out + i * out_count;
    const TransformChoice& pick = picks[i];
    for (int c = 0; c < channels; ++c) {
      const float channel_mean =
          mean_values_.empty() ? 0.0f : mean_values_[mean_values_.size() == 1 ? 0 : c];
      for (int y = 0; y < out_h; ++y) {
        const int64_t source_row = (static_cast<int64_t>(c) * height + y + pick.h_off) * width + pick.w_off;
        const T* s = src + source_row;
        float* d = dst + (static_cast<int64_t>(c) * out_h + y) * out_w;
        if (mean_file) {
          TransformRow(s, mean_file + source_row, scale, out_w, pick.mirror, d);
        } else {
          TransformRow(s, channel_mean, scale, out_w, pick.mirror, d);
        }
      }
    }
  });
  if (choices) *choices = std::move(picks);
}

template void DataTransformer::Transform<uint8_t>(const uint8_t*, int, int, int, int, float*,
                                                  std::vector<TransformChoice>*);
template void DataTransformer::Transform<float>(const float*, int, int, int, int, float*,
                                                std::vector<TransformChoice>*);

}  // namespace caffeonspark
