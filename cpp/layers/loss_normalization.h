// loss_param.normalization for the loss layers that take it (docs/CAFFE.md §2 losses):
// FULL = outer·inner positions (ignored ones included), VALID = non-ignored positions,
// BATCH_SIZE = outer, NONE = 1; then max(1, ·) so that an all-ignored batch gives 0, not NaN.
// Tests: tests/layers/test_sigmoid_xent.py, tests/layers/test_label_loss.py.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "core/errors.h"
#include "core/params.h"

namespace caffeonspark {

// The mode a loss layer uses: `normalization` when written (engine.py passes
// `normalization_set`), else the deprecated `normalize` when written (true VALID, false
// BATCH_SIZE), else `fallback` (VALID for most layers, BATCH_SIZE for SigmoidCrossEntropyLoss).
inline std::string LossNormalizationMode(const Params& loss, const std::string& fallback) {
  if (loss.size("normalization_set") && loss.flag("normalization_set")) {
    return loss.str("normalization");
  }
  if (loss.size("normalize")) return loss.flag("normalize") ? "VALID" : "BATCH_SIZE";
  return fallback;
}

inline double LossNormalizer(const std::string& mode, int64_t outer, int64_t inner,
                             int64_t valid, const std::string& where) {
  double norm;
  if (mode == "FULL") {
    norm = static_cast<double>(outer * inner);
  } else if (mode == "VALID") {
    norm = static_cast<double>(valid);
  } else if (mode == "BATCH_SIZE") {
    norm = static_cast<double>(outer);
  } else if (mode == "NONE") {
    norm = 1.0;
  } else {
    throw ConfigError(Msg(where, "unknown normalization '", mode, "'"));
  }
  return std::max(1.0, norm);
}

}  // namespace caffeonspark
