#include "data/prefetcher.h"

#include "core/errors.h"

namespace caffeonspark {

Prefetcher::Prefetcher(std::string owner, size_t capacity, Process process)
    : owner_(std::move(owner)),
      process_(std::move(process)),
      input_(std::make_shared<BatchQueue>(owner_, capacity)),
      ready_(std::make_shared<BatchQueue>(owner_, capacity)),
      free_limit_(capacity + 2) {
  thread_ = std::thread([this] { Run(); });
}

Prefetcher::~Prefetcher() {
  input_->Close();
  ready_->Close();
  if (thread_.joinable()) thread_.join();
}

void Prefetcher::Run() {
  for (;;) {
    Batch out;
    try {
      // No deadline here: the consumer's pop on ready() carries the timeout.
      out = process_(input_->Pop(-1), *this);
    } catch (...) {
      ready_->Close(std::current_exception());
      input_->Close();
      return;
    }
    if (ready_->Push(std::move(out)) != BatchQueue::PushResult::kPushed) return;
  }
}

void Prefetcher::Recycle(std::shared_ptr<SyncedMemory> memory) {
  if (!memory || memory.use_count() != 1 || memory->head() != SyncedMemory::Head::kAtHost) return;
  std::lock_guard<std::mutex> lock(free_mutex_);
  if (free_.size() < free_limit_) free_.push_back(std::move(memory));
}

std::shared_ptr<SyncedMemory> Prefetcher::Buffer(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(free_mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i]->size() != bytes) continue;
      std::shared_ptr<SyncedMemory> memory = std::move(free_[i]);
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
      return memory;
    }
  }
  return std::make_shared<SyncedMemory>(bytes);
}

Batch Prefetcher::TransformBatch(const std::string& owner, DataTransformer& transformer,
                                 bool transform_floats, Batch batch, Prefetcher& pool) {
  COS_CHECK(batch.tops.empty(), ShapeError, owner, "got a batch of ", batch.tops.size(),
            " tops; this layer takes one data array and its labels");
  COS_CHECK(batch.shape.size() == 4, ShapeError, owner, "a batch must be 4-D (N, C, H, W), got ",
            batch.shape.size(), " axes");
  const int num = batch.shape[0];
  COS_CHECK(static_cast<int>(batch.labels.size()) == num, ShapeError, owner, "a batch of ", num,
            " items came with ", batch.labels.size(), " labels");
  size_t held = batch.raw ? batch.pixels.size() : batch.values.size();
  COS_CHECK(held == static_cast<size_t>(batch.item_count()) * num, InternalError, owner,
            "a batch holds ", held, " values for its shape");
  if (!batch.raw && !transform_floats) return batch;
  std::vector<int> item = transformer.OutputShape(batch.shape[1], batch.shape[2], batch.shape[3]);
  Batch out;
  out.shape = {num, item[0], item[1], item[2]};
  out.memory = pool.Buffer(static_cast<size_t>(out.item_count()) * num * sizeof(float));
  out.labels = std::move(batch.labels);
  float* target = static_cast<float*>(out.memory->mutable_host_data());
  if (batch.raw) {
    transformer.Transform(batch.pixels.data(), num, batch.shape[1], batch.shape[2],
                          batch.shape[3], target);
  } else {
    transformer.Transform(batch.values.data(), num, batch.shape[1], batch.shape[2],
                          batch.shape[3], target);
  }
  return out;
}

}  // namespace caffeonspark
