// BatchQueue: a bounded, thread-safe FIFO of data batches between a feeder (a Python thread
// reading LMDB, a user pushing arrays into MemoryData, the native transform thread) and the
// layer that consumes them in Forward. Every wait has a deadline:
//   Push blocks while the queue is full (until space, close, or its timeout);
//   Pop blocks while it is empty and throws IoError naming the owner ("no data arrived
//   within N s") when its timeout passes.
// Close(error) ends the stream: the consumer still receives the batches already queued, then
// the feeder's error is rethrown on the consumer's side (so a failing feeder surfaces in the
// solver thread instead of a hang); a close without error makes Pop raise "feeder closed".
// The consumer's total waiting time is recorded for the data-wait report.
// Tests: tests/data/test_batch_queue.py.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/synced_memory.h"

namespace caffeonspark {

// One batch: N items of shape (C, H, W) as raw uint8 pixels (before the DataTransformer) or
// as float32 values, plus N float labels. Raw batches use `pixels`; float batches use
// `values`, or, when the prefetcher transformed them, `memory`: a tensor buffer the layer's
// top takes by swapping buffers instead of copying (cpp/layers/queue_data.cc).
// A multi-top batch (CoSData, cpp/layers/cos_data.h) instead holds one such batch per top
// in `tops` (no labels of its own; its shape is (N)).
struct Batch {
  std::vector<int> shape;           // (N, C, H, W)
  std::vector<uint8_t> pixels;      // raw images, when raw
  std::vector<float> values;        // float data, when !raw and memory is null
  std::shared_ptr<SyncedMemory> memory;  // transformed float data (host), when set
  std::vector<float> labels;        // N
  bool raw = false;
  std::vector<Batch> tops;          // multi-top batches only

  int num() const { return shape.empty() ? 0 : shape[0]; }
  int64_t item_count() const;       // C*H*W
  // The float data of a !raw batch, wherever it is held; float_count() values.
  const float* float_data() const;
  size_t float_count() const;
};

class BatchQueue {
 public:
  enum class PushResult { kPushed, kClosed, kTimedOut };

  // `owner` prefixes every error ("layer 'data' (Data) at net.prototxt:3: ").
  BatchQueue(std::string owner, size_t capacity, double pop_timeout_s = kDefaultPopTimeout);
  BatchQueue(const BatchQueue&) = delete;
  BatchQueue& operator=(const BatchQueue&) = delete;

  static constexpr double kDefaultPopTimeout = 120.0;

  // Waits for space (timeout_s < 0: no deadline). kClosed when the queue is or gets closed
  // (the batch is dropped: its consumer is gone).
  PushResult Push(Batch batch, double timeout_s = -1);
  // The next batch, waiting up to pop_timeout(). Throws the feeder's error once the queue is
  // closed and drained, IoError when closed without error, IoError on timeout.
  Batch Pop();
  Batch Pop(double timeout_s);

  // Ends the stream; `error` (may be null) is rethrown to consumers after the queue drains.
  // The first close wins; later closes change nothing.
  void Close(std::exception_ptr error = nullptr);

  bool closed() const;
  size_t size() const;
  size_t capacity() const;
  void set_capacity(size_t capacity);
  double pop_timeout() const;
  void set_pop_timeout(double seconds);
  const std::string& owner() const { return owner_; }

  // Seconds consumers spent blocked in Pop, and the number of batches popped.
  double wait_seconds() const;
  int64_t pops() const;
  // Producers blocked in Push right now (the queue is full: the consumer is the slower side).
  int blocked_pushes() const;

 private:
  const std::string owner_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Batch> items_;
  size_t capacity_;
  double pop_timeout_s_;
  bool closed_ = false;
  std::exception_ptr error_;
  double wait_seconds_ = 0;
  int64_t pops_ = 0;
  int blocked_pushes_ = 0;
};

}  // namespace caffeonspark
