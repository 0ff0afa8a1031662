// Prefetcher: the native prefetch side of a queue-fed data layer (Caffe's prefetch thread).
// Feeders push batches into input(); one native thread pops them, applies the layer's
// DataTransformer (to raw uint8 batches always, to float batches when transform_floats),
// and pushes the float32 result into ready(), which the layer's Forward pops. The solver
// thread therefore never calls Python: it only waits on ready(). Transformed batches are
// written into tensor buffers (Batch::memory) that the layer's top swaps in; the buffer it
// swaps out comes back through Recycle(), so steady state allocates (and zero-fills) nothing.
// Both queues hold `capacity` batches (data_param.prefetch for Data). Errors raised on the
// thread (a bad batch, or the feeder's own error once input() drains) close ready() with
// that error, so they surface in Forward on the solver's thread; they also close input(),
// which tells the feeder to stop. The destructor closes both queues and joins the thread.
// Tests: tests/layers/test_memory_data.py, tests/layers/test_data.py.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/batch_queue.h"
#include "data/transformer.h"

namespace caffeonspark {

class Prefetcher {
 public:
  Prefetcher(std::string owner, size_t capacity, std::unique_ptr<DataTransformer> transformer,
             bool transform_floats);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  const std::shared_ptr<BatchQueue>& input() const { return input_; }
  const std::shared_ptr<BatchQueue>& ready() const { return ready_; }
  // Const use is safe from any thread (the prefetch thread only draws from its RNG).
  const DataTransformer& transformer() const { return *transformer_; }
  // The next transformed batch (waits up to ready()->pop_timeout()).
  Batch Next() { return ready_->Pop(); }
  // Gives a tensor buffer back for reuse (ignored unless nothing else holds it and its data
  // is on the host).
  void Recycle(std::shared_ptr<SyncedMemory> memory);

 private:
  void Run();
  Batch Process(Batch batch);
  std::shared_ptr<SyncedMemory> Buffer(size_t bytes);

  std::string owner_;
  std::unique_ptr<DataTransformer> transformer_;
  bool transform_floats_;
  std::shared_ptr<BatchQueue> input_;
  std::shared_ptr<BatchQueue> ready_;
  std::mutex free_mutex_;
  std::vector<std::shared_ptr<SyncedMemory>> free_;  // buffers Recycle() gave back
  size_t free_limit_;
  std::thread thread_;
};

}  // namespace caffeonspark
