// Weight fillers (FillerParameter): constant, uniform, gaussian (+sparse), positive_unitball,
// xavier, msra, bilinear. Fan-in = count / shape(0), fan-out = count / shape(1).
// Tests: tests/core/test_filler.py.
#pragma once

#include <string>

#include "core/params.h"
#include "core/tensor.h"

namespace caffeonspark {

// `filler` is a FillerParameter with defaults filled in; unknown types raise ConfigError.
// `owner` prefixes every error (the layer and the filler field: "layer 'ip1' (InnerProduct)
// at net.prototxt:9: weight_filler: ").
void Fill(const Params& filler, Tensor* tensor, const std::string& owner);

}  // namespace caffeonspark
