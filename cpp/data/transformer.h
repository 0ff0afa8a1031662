// DataTransformer: Caffe's per-item preprocessing of data-layer images (docs/CAFFE.md §5.4),
// from uint8 (or float) CHW items to float32 CHW outputs. Per output element, in order:
//   1. pick the source pixel inside the crop window (crop_size > 0: TRAIN offsets uniform in
//      [0, H - crop] x [0, W - crop]; TEST centred at ((H - crop) / 2, (W - crop) / 2));
//   2. when mirror is set, flip the row horizontally with probability 1/2 (in every phase);
//   3. value = (pixel - mean) * scale, mean taken at the SOURCE position: mean_file is a
//      full-size (C, H, W) blob whose crop window is used; mean_value is one value for all
//      channels or one per channel; the two are exclusive.
// transform_param fields (defaults): scale (1), mirror (false), crop_size (0), mean_file,
// mean_value (repeated). The engine never reads files: Python loads the mean file and
// passes it as transform_param.mean_file_data {shape: [C, H, W], data: float32 bytes}
// (python/caffeonspark/data/feeders.py). Random choices come from the transformer's own
// mt19937, seeded once from the engine RNG (cpp/core/rng.h) when its layer is set up, so
// it may run on a prefetch thread without racing the solver thread.
// Tests: tests/data/test_transformer.py.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/params.h"

namespace caffeonspark {

// Where item i's window was taken from (for tests and debugging).
struct TransformChoice {
  int h_off = 0;
  int w_off = 0;
  bool mirror = false;
};

class DataTransformer {
 public:
  // `owner` prefixes error messages; `train` selects random (TRAIN) or centred (TEST) crops.
  DataTransformer(const Params& transform_param, bool train, std::string owner, uint32_t seed);

  // Output (C, H', W') for input items of shape (C, H, W); raises ShapeError/ConfigError
  // when the crop does not fit or the mean does not match the items.
  std::vector<int> OutputShape(int channels, int height, int width) const;

  // Transforms `num` items of (channels, height, width) from `in` into `out`, which holds
  // num * C * H' * W' floats. Records each item's choices when `choices` is given.
  template <typename T>
  void Transform(const T* in, int num, int channels, int height, int width, float* out,
                 std::vector<TransformChoice>* choices = nullptr);

  int crop_size() const { return crop_size_; }
  // True when Transform only copies (scale 1, no crop, mirror or mean).
  bool identity() const {
    return scale_ == 1.0f && !mirror_ && crop_size_ == 0 && mean_file_.empty() &&
           mean_values_.empty();
  }

 private:
  TransformChoice Pick(int height, int width);

  std::string owner_;
  bool train_;
  float scale_;
  bool mirror_;
  int crop_size_;
  std::string mean_file_;
  std::vector<int> mean_shape_;     // (C, H, W) of mean_file_data, empty without a file
  std::vector<float> mean_data_;
  std::vector<float> mean_values_;  // mean_value entries (0, 1 or C of them)
  std::mt19937 rng_;
};

}  // namespace caffeonspark
