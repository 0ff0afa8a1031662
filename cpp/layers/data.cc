#include "layers/data.h"

namespace caffeonspark {

void DataLayer::LayerSetUp(const Tensors&, const Tensors& top) {
  const Params& p = spec_.params.child("data_param");
  const std::string backend = p.size("backend") ? p.str("backend") : "LEVELDB";
  COS_LAYER_CHECK(backend == "LMDB", ConfigError, "data_param.backend is ", backend,
                  ": LevelDB databases are unsupported; convert the database to LMDB (e.g. "
                  "convert_imageset --backend=lmdb) and set `backend: LMDB`");
  COS_LAYER_CHECK(p.size("source") && !p.str("source").empty(), ConfigError,
                  "data_param.source (the LMDB directory) is missing");
  const int batch_size = static_cast<int>(p.number_or("batch_size", 0));
  COS_LAYER_CHECK(batch_size > 0, ConfigError, "data_param.batch_size must be positive, got ",
                  batch_size);
  const int prefetch = static_cast<int>(p.number_or("prefetch", 4));
  COS_LAYER_CHECK(prefetch > 0, ConfigError, "data_param.prefetch must be positive, got ", prefetch);
  std::vector<int> datum = p.integers("datum_shape");
  COS_LAYER_CHECK(datum.size() == 3, ConfigError,
                  "data_param.datum_shape [C, H, W] is missing: the Python Net wrapper "
                  "(caffeonspark.engine.Net) reads it from the first Datum of ", p.str("source"));
  StartPrefetch(static_cast<size_t>(prefetch), /*transform_floats=*/true);
  std::vector<int> item = TransformedShape(datum[0], datum[1], datum[2]);
  shape_ = {batch_size, item[0], item[1], item[2]};
  top[0]->Reshape(shape_);
  if (top.size() > 1) top[1]->Reshape({batch_size});
}

void DataLayer::CheckBatch(const Batch& batch) const {
  COS_LAYER_CHECK(batch.shape == shape_, ShapeError, "a batch of shape (", batch.shape[0], ", ",
                  batch.shape[1], ", ", batch.shape[2], ", ", batch.shape[3],
                  ") after its transform does not match the layer's top (", shape_[0], ", ",
                  shape_[1], ", ", shape_[2], ", ", shape_[3], ")");
}

}  // namespace caffeonspark
