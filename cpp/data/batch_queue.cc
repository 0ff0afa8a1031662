#include "data/batch_queue.h"

#include <chrono>

#include "core/errors.h"

namespace caffeonspark {

namespace {

using Clock = std::chrono::steady_clock;

// Waits on `cv` until `ready()` holds or `timeout_s` passes (< 0: no deadline).
template <typename Ready>
bool WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, double timeout_s,
             Ready ready) {
  if (timeout_s < 0) {
    cv.wait(lock, ready);
    return true;
  }
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  return cv.wait_until(lock, deadline, ready);
}

}  // namespace

int64_t Batch::item_count() const {
  int64_t count = 1;
  for (size_t i = 1; i < shape.size(); ++i) count *= shape[i];
  return count;
}

const float* Batch::float_data() const {
  return memory ? static_cast<const float*>(memory->host_data()) : values.data();
}

size_t Batch::float_count() const {
  return memory ? static_cast<size_t>(item_count()) * num() : values.size();
}

BatchQueue::BatchQueue(std::string owner, size_t capacity, double pop_timeout_s)
    : owner_(std::move(owner)), capacity_(capacity), pop_timeout_s_(pop_timeout_s) {
  COS_CHECK(capacity > 0, ConfigError, owner_, "a batch queue needs a capacity of at least 1");
}

BatchQueue::PushResult BatchQueue::Push(Batch batch, double timeout_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  ++blocked_pushes_;  // only observable while WaitFor has released the lock, i.e. blocked
  bool ready = WaitFor(not_full_, lock, timeout_s,
                       [this] { return closed_ || items_.size() < capacity_; });
  --blocked_pushes_;
  if (closed_) return PushResult::kClosed;
  if (!ready) return PushResult::kTimedOut;
  items_.push_back(std::move(batch));
  lock.unlock();
  not_empty_.notify_one();
  return PushResult::kPushed;
}

Batch BatchQueue::Pop() { return Pop(pop_timeout()); }

Batch BatchQueue::Pop(double timeout_s) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto start = Clock::now();
  bool ready = WaitFor(not_empty_, lock, timeout_s, [this] { return closed_ || !items_.empty(); });
  wait_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  if (!items_.empty()) {
    Batch batch = std::move(items_.front());
    items_.pop_front();
    ++pops_;
    lock.unlock();
    not_full_.notify_one();
    return batch;
  }
  if (closed_ && error_) std::rethrow_exception(error_);
  COS_CHECK(!closed_, IoError, owner_, "its data feeder was closed and no batches are left");
  COS_CHECK(ready, IoError, owner_, "no data arrived within ", timeout_s,
            " seconds (is its feeder running? set a longer timeout if the source is slow)");
  throw InternalError(Msg(owner_, "batch queue woke up with nothing to pop"));
}

void BatchQueue::Close(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    error_ = std::move(error);
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

bool BatchQueue::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

size_t BatchQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return items_.size();
}

size_t BatchQueue::capacity() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return capacity_;
}

void BatchQueue::set_capacity(size_t capacity) {
  COS_CHECK(capacity > 0, ConfigError, owner_, "a batch queue needs a capacity of at least 1");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    capacity_ = capacity;
  }
  not_full_.notify_all();
}

double BatchQueue::pop_timeout() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pop_timeout_s_;
}

void BatchQueue::set_pop_timeout(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  pop_timeout_s_ = seconds;
}

double BatchQueue::wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return wait_seconds_;
}

int64_t BatchQueue::pops() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pops_;
}

int BatchQueue::blocked_pushes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return blocked_pushes_;
}

}  // namespace caffeonspark
