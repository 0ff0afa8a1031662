// Weight fillers (FillerParameter): constant, uniform, gaussian (+sparse), positive_unitball,
// xavier, msra, bilinear. Fan-in = count / shape(0), fan-out = count / shape(1).
// Tests: tests/core/test_filler.py.
#pragma once

#include "core/params.h"
#include "core/tensor.h"

namespace caffeonspark {

// `filler` is a FillerParameter with defaults filled in; unknown types raise ConfigError.
void Fill(const Params& filler, Tensor* tensor);

}  // namespace caffeonspark
