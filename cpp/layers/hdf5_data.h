// HDF5Data and HDF5Output: Caffe's HDF5 reader and writer layers. The engine reads and
// writes no files: Python threads do (python/caffeonspark/data/hdf5_feeder.py, started by
// engine.Net), over native queues.
//
// HDF5Data, type "HDF5Data" (hdf5_data_param: source = a text file naming .h5 files,
// batch_size, shuffle (false)). No bottoms; one top per dataset, the top's name being the
// dataset's; top i is (batch_size, dims of that dataset past the first). Rows run through
// the files in order and wrap around to the first file; a batch may span files (docs/DATA.md
// "HDF5Data"). The feeder pushes one multi-top float batch per Forward, each array as
// (batch_size, row count, 1, 1); the dataset shapes read from the first file arrive as
// hdf5_data_param.top_shapes = [{dim: [...]}, ...] (engine-only). No backward.
//
// HDF5Output, type "HDF5Output" (hdf5_output_param.file_name). Bottoms data and label (the
// same first dimension), no tops, no backward. Each Forward copies both bottoms into one
// batch for output_queue(), viewed as Caffe's legacy 4-D (N, C, H, W) (missing axes are 1);
// the writer thread appends the rows to datasets "data" and "label" of a temporary file and
// renames it to file_name when the net is closed. A writer failure closes the queue with
// its error, which the next Forward raises.
// Tests: tests/layers/test_hdf5_data.py.
#pragma once

#include <memory>
#include <vector>

#include "layers/queue_data.h"

namespace caffeonspark {

class HDF5DataLayer : public QueueDataLayer {
 public:
  using QueueDataLayer::QueueDataLayer;
  ~HDF5DataLayer() override { StopPrefetch(); }  // the thread uses shapes_
  static constexpr size_t kQueueCapacity = 4;
  const char* type() const override { return "HDF5Data"; }
  int MaxTopBlobs() const override { return -1; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void CheckBatch(const Batch& batch) const override;
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;

 private:
  Batch Process(Batch batch) const;
  std::vector<std::vector<int>> shapes_;  // per top: (batch_size, dims...)
};

class HDF5OutputLayer : public Layer {
 public:
  explicit HDF5OutputLayer(LayerSpec spec);
  static constexpr size_t kQueueCapacity = 8;
  const char* type() const override { return "HDF5Output"; }
  int ExactNumBottomBlobs() const override { return 2; }
  int ExactNumTopBlobs() const override { return 0; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;
  // Where Forward pushes (data, label) batches for the writer thread.
  const std::shared_ptr<BatchQueue>& output_queue() const { return queue_; }

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors&, const std::vector<bool>&, const Tensors&) override {}

 private:
  std::shared_ptr<BatchQueue> queue_;
};

}  // namespace caffeonspark
