// Prefetcher: the native prefetch side of a queue-fed data layer (Caffe's prefetch thread).
// Feeders push batches into input(); one native thread pops them, turns each into a ready
// batch with the layer's `process` function, and pushes the float32 result into ready(),
// which the layer's Forward pops. The solver thread therefore never calls Python: it only
// waits on ready(). `TransformBatch` is the process of the single-top layers (MemoryData,
// Data): their DataTransformer applied to raw uint8 batches always, to float batches when
// transform_floats; CoSData (cpp/layers/cos_data.h) processes each of its tops.
// Transformed single-top batches are written into tensor buffers (Batch::memory) that the
// layer's top swaps in; the buffer it swaps out comes back through Recycle(), so steady
// state allocates (and zero-fills) nothing.
// Both queues hold `capacity` batches (data_param.prefetch for Data). Errors raised on the
// thread (a bad batch, or the feeder's own error once input() drains) close ready() with
// that error, so they surface in Forward on the solver's thread; they also close input(),
// which tells the feeder to stop. The destructor closes both queues and joins the thread.
// Tests: tests/layers/test_memory_data.py, tests/layers/test_data.py,
// tests/layers/test_cos_data.py.
#pragma once

#include <functional>
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
  // Turns one fed batch into one ready batch, on the prefetch thread; throws to fail the stream.
  // `pool` is this prefetcher, for buffers (Buffer()).
  using Process = std::function<Batch(Batch, Prefetcher& pool)>;

  Prefetcher(std::string owner, size_t capacity, Process process);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  const std::shared_ptr<BatchQueue>& input() const { return input_; }
  const std::shared_ptr<BatchQueue>& ready() const { return ready_; }
  // The next processed batch (waits up to ready()->pop_timeout()).
  Batch Next() { return ready_->Pop(); }
  // Gives a tensor buffer back for reuse (ignored unless nothing else holds it and its data
  // is on the host).
  void Recycle(std::shared_ptr<SyncedMemory> memory);
  // A host buffer of `bytes`: a recycled one when there is one, else a new one.
  std::shared_ptr<SyncedMemory> Buffer(size_t bytes);

  // One single-top batch (N, C, H, W) + N labels through `transformer` (see the file comment).
  static Batch TransformBatch(const std::string& owner, DataTransformer& transformer,
                              bool transform_floats, Batch batch, Prefetcher& pool);

 private:
  void Run();

  std::string owner_;
  Process process_;
  std::shared_ptr<BatchQueue> input_;
  std::shared_ptr<BatchQueue> ready_;
  std::mutex free_mutex_;
  std::vector<std::shared_ptr<SyncedMemory>> free_;  // buffers Recycle() gave back
  size_t free_limit_;
  std::thread thread_;
};

}  // namespace caffeonspark
