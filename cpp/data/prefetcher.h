// Prefetcher: the native prefetch side of a queue-fed data layer (Caffe's prefetch thread).
// Feeders push batches into input(); one native thread pops them, turns each into a ready
// batch with the layer's `process` function, and pushes the float32 result into ready(),
// which the layer's Forward pops. The solver thread therefore never calls Python: it only
// waits on ready(). `TransformBatch` is the process of the single-top layers (MemoryData,
// Data): their DataTransformer applied to raw uint8 batches always, to float batches when
// transform_floats; CoSData (cpp/layers/cos_data.h) processes each of its tops.
// Both queues hold `capacity` batches (data_param.prefetch for Data). Errors raised on the
// thread (a bad batch, or the feeder's own error once input() drains) close ready() with
// that error, so they surface in Forward on the solver's thread; they also close input(),
// which tells the feeder to stop. The destructor closes both queues and joins the thread.
// Tests: tests/layers/test_memory_data.py, tests/layers/test_data.py,
// tests/layers/test_cos_data.py.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "data/batch_queue.h"
#include "data/transformer.h"

namespace caffeonspark {

class Prefetcher {
 public:
  // Turns one fed batch into one ready batch, on the prefetch thread; throws to fail the stream.
  using Process = std::function<Batch(Batch)>;

  Prefetcher(std::string owner, size_t capacity, Process process);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  const std::shared_ptr<BatchQueue>& input() const { return input_; }
  const std::shared_ptr<BatchQueue>& ready() const { return ready_; }
  // The next processed batch (waits up to ready()->pop_timeout()).
  Batch Next() { return ready_->Pop(); }

  // One single-top batch (N, C, H, W) + N labels through `transformer` (see the file comment).
  static Batch TransformBatch(const std::string& owner, DataTransformer& transformer,
                              bool transform_floats, Batch batch);

 private:
  void Run();

  std::string owner_;
  Process process_;
  std::shared_ptr<BatchQueue> input_;
  std::shared_ptr<BatchQueue> ready_;
  std::thread thread_;
};

}  // namespace caffeonspark
