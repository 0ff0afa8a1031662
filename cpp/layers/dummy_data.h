// DummyData: tops filled by fillers. Type "DummyData" (dummy_data_param). No bottoms, no
// backward.
// Shapes: `shape` (BlobShape, given once for every top or once per top), or the legacy 4-D
// fields num, channels, height, width (each given once or once per top; all four needed);
// the two forms together are a ConfigError.
// Fillers: `data_filler` given zero times (every top constant 0), once (one filler for all
// tops) or once per top (cpp/core/filler.h). A top whose filler is "constant" is filled once
// at setup and never again; every other top is refilled in each Forward (Caffe's rule:
// random tops change per pass, constant ones cost nothing). The tops keep their shapes
// (Reshape changes nothing), so a net reshape never resizes them.
// Tests: tests/layers/test_dummy_data.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class DummyDataLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "DummyData"; }
  int ExactNumBottomBlobs() const override { return 0; }
  int MinTopBlobs() const override { return 1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors&, const Tensors&) override {}

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}

 private:
  // The filler of top i, and whether Forward refills it.
  const Params& FillerOf(size_t i) const;
  std::vector<int> ShapeOf(const Params& p, size_t i, size_t num_top) const;

  Params default_filler_;      // constant 0, when no data_filler is given
  std::vector<bool> refill_;   // per top
};

}  // namespace caffeonspark
