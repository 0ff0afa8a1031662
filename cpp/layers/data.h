// Data: Caffe's database data layer. Type "Data" (data_param, transform_param).
// data_param: source (the LMDB directory), batch_size (> 0), backend (only LMDB: LEVELDB,
// Caffe's default, is refused with ConfigError), prefetch (4) = batches buffered on each
// side of the prefetch thread. Tops data (batch_size, C, crop or H, crop or W) and optional
// label (batch_size). No bottoms, no backward.
// The engine does not link liblmdb: a Python feeder thread
// (python/caffeonspark/data/lmdb_feeder.py, started by engine.Net) reads the Datums in key
// order, wrapping around, keeps every world_size-th record for its rank in TRAIN, and pushes
// raw uint8 (or float_data) batches into feed_queue(); the prefetch thread applies the
// transform; Forward pops. The item shape is known only from the first Datum, which Python
// reads before SetUp and passes as data_param.datum_shape = [C, H, W] (an engine-only
// field, not in caffe.proto).
// Tests: tests/layers/test_data.py.
#pragma once

#include "layers/queue_data.h"

namespace caffeonspark {

class DataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  const char* type() const override { return "Data"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;

 private:
  std::vector<int> shape_;  // (batch_size, C, H', W') after the transform
};

}  // namespace caffeonspark
