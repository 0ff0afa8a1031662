#include "solver/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "comm/sha256.h"
#include "core/errors.h"

namespace caffeonspark {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double SteadySeconds(Clock::time_point at) {
  return std::chrono::duration<double>(at.time_since_epoch()).count();
}

}  // namespace

DataParallel::DataParallel(std::shared_ptr<Net> net, std::shared_ptr<comm::Communicator> comm,
                           DataParallelOptions options)
    : net_(std::move(net)), comm_(std::move(comm)), options_(options) {
  COS_CHECK(net_ != nullptr && comm_ != nullptr, ConfigError,
            "data parallel: a net and a communicator are required");
  COS_CHECK(options_.bucket_bytes >= sizeof(float) && options_.first_bucket_bytes >= sizeof(float),
            ConfigError, "data parallel: bucket sizes must hold at least one float");
  PlanBuckets();
  for (const GradientBucket& bucket : buckets_) buffers_.emplace_back(bucket.count);
  // The buckets stay put for this object's life: a transport that registers memory with
  // the network card (UCX) does it once for each.
  for (const std::vector<float>& buffer : buffers_)
    comm_->RegisterBuffer(buffer.data(), buffer.size() * sizeof(float));
  net_->set_after_layer_backward([this](int layer) { OnLayerBackward(layer); });
  thread_ = std::thread([this] { CommLoop(); });
}

DataParallel::~DataParallel() {
  Stop();
  net_->set_after_layer_backward(nullptr);
  for (const std::vector<float>& buffer : buffers_) comm_->UnregisterBuffer(buffer.data());
}

void DataParallel::PlanBuckets() {
  const auto& params = net_->learnable_params();
  const auto& lr = net_->params_lr();
  std::vector<int> ready(params.size(), -1);
  for (int layer = 0; layer < net_->num_layers(); ++layer) {
    const int blobs = static_cast<int>(net_->layer(layer).blobs().size());
    for (int j = 0; j < blobs; ++j) {
      int& first = ready[net_->learnable_param_id(layer, j)];
      if (first < 0) first = layer;  // layers run backward last to first: the lowest user
    }
  }
  std::vector<int> order;
  for (int id = 0; id < static_cast<int>(params.size()); ++id)
    if (lr[id] != 0 && ready[id] >= 0) order.push_back(id);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return ready[a] > ready[b]; });
  for (int id : order) {
    const size_t count = static_cast<size_t>(params[id]->count());
    // The open bucket is the first while there is one bucket: the first has its own cap.
    const size_t cap = buckets_.size() == 1 ? options_.first_bucket_bytes : options_.bucket_bytes;
    if (buckets_.empty() || (buckets_.back().count + count) * sizeof(float) > cap)
      buckets_.emplace_back();
    GradientBucket& bucket = buckets_.back();
    bucket.params.push_back(id);
    bucket.count += count;
    bucket.ready_layer = ready[id];
  }
}

// ---- the comm thread -----------------------------------------------------------------

void DataParallel::CommLoop() {
  const auto idle = std::chrono::duration<double>(comm_->heartbeat_seconds() / 2);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_comm_.wait_for(lock, idle, [this] { return stop_ || !tasks_.empty(); });
    if (stop_ && tasks_.empty()) return;
    if (tasks_.empty()) {
      lock.unlock();
      comm_->Idle(0);  // heartbeats; notices of failed peers are kept for the next call
      lock.lock();
      continue;
    }
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    busy_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
      task();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (error && !error_) error_ = error;
    wake_solver_.notify_all();
  }
}

void DataParallel::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  wake_comm_.notify_one();
}

void DataParallel::RunOnCommThread(std::function<void()> task) {
  bool done = false;
  Post([&] {
    // `done` is set after the task, errors included (CommLoop records them).
    struct Finish {
      bool& flag;
      std::mutex& mutex;
      ~Finish() {
        std::lock_guard<std::mutex> lock(mutex);
        flag = true;
      }
    } finish{done, mutex_};
    task();
  });
  std::unique_lock<std::mutex> lock(mutex_);
  wake_solver_.wait(lock, [&] { return done && !busy_; });
  lock.unlock();
  RethrowCommError();
}

void DataParallel::RethrowCommError() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void DataParallel::Stop() {
  if (!thread_.joinable()) return;
  bool in_flight;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    in_flight = busy_ || !tasks_.empty();
  }
  if (in_flight) comm_->Abort("training stopped on this rank while gradients were being reduced");
  wake_comm_.notify_all();
  thread_.join();
}

// ---- the solver thread ---------------------------------------------------------------

void DataParallel::BeforePass(bool last) {
  RethrowCommError();
  armed_ = last;
  next_launch_ = 0;
  if (last) {
    std::lock_guard<std::mutex> lock(mutex_);
    buckets_done_ = 0;
  }
}

void DataParallel::OnLayerBackward(int layer) {
  if (!armed_) return;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready_layer >= layer)
    Launch(next_launch_++);
}

void DataParallel::Launch(size_t index) {
  const GradientBucket& bucket = buckets_[index];
  float* buffer = buffers_[index].data();
  const auto& params = net_->learnable_params();
  size_t offset = 0;
  for (int id : bucket.params) {
    const Tensor& param = *params[id];
    std::memcpy(buffer + offset, param.diff(), static_cast<size_t>(param.count()) * sizeof(float));
    offset += static_cast<size_t>(param.count());
  }
  const size_t count = bucket.count;
  Post([this, buffer, count] {
    const Clock::time_point start = Clock::now();
    comm_->Allreduce(buffer, count, /*average=*/true);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.comm_seconds += Since(start);
    ++buckets_done_;
  });
}

void DataParallel::FinishGradients() {
  COS_CHECK(armed_, InternalError, "data parallel: FinishGradients without a last pass");
  while (next_launch_ < buckets_.size()) Launch(next_launch_++);  // backward skipped the hook
  armed_ = false;
  const Clock::time_point start = Clock::now();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    wake_solver_.wait(lock, [this] { return buckets_done_ == buckets_.size() || error_; });
    const Clock::time_point reduced = Clock::now();
    stats_.wait_seconds += std::chrono::duration<double>(reduced - start).count();
    ++stats_.iterations;
    if (timeline_.size() == 1024) timeline_.pop_front();
    timeline_.push_back({SteadySeconds(start), SteadySeconds(reduced)});
    if (error_) std::rethrow_exception(error_);
  }
  const auto& params = net_->learnable_params();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const float* buffer = buffers_[b].data();
    for (int id : buckets_[b].params) {
      Tensor& param = *params[id];
      std::memcpy(param.mutable_diff(), buffer, static_cast<size_t>(param.count()) * sizeof(float));
      buffer += param.count();
    }
  }
}

void DataParallel::AfterUpdate(int iter) {
  if (!options_.check_params) return;
  const Clock::time_point start = Clock::now();
  int mismatches = 0;
  RunOnCommThread([&] { mismatches = CountMismatches(ParamDigest()); });
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.check_seconds += Since(start);
  }
  COS_CHECK(mismatches == 0, CommError, "data parallel: after iteration ", iter, ", ",
            mismatches, " rank(s) hold parameters that differ from rank 0's (SHA-256 of the ",
            "reduced parameters); ", comm_->PeerName(comm_->rank()),
            mismatches > 0 ? " is one of them or sees them" : "");
}

comm::Digest DataParallel::ParamDigest() const {
  comm::Sha256 hash;
  const auto& params = net_->learnable_params();
  for (const GradientBucket& bucket : buckets_) {
    for (int id : bucket.params) {
      const Tensor& param = *params[id];
      hash.Update(param.data(), static_cast<size_t>(param.count()) * sizeof(float));
    }
  }
  return hash.Final();
}

int DataParallel::CountMismatches(const comm::Digest& digest) {
  comm::Digest root = digest;
  comm_->Broadcast(root.data(), root.size(), 0);
  float differs = comm::DigestsEqual(root, digest) ? 0.0f : 1.0f;
  comm_->Allreduce(&differs, 1, /*average=*/false);
  return static_cast<int>(differs);
}

void DataParallel::BroadcastState(const std::vector<Tensor*>& extra) {
  int mismatches = 0;
  RunOnCommThread([&] {
    // The nets agree when their learnable parameter shapes (and the bucket plan) agree.
    comm::Sha256 hash;
    for (const Tensor* param : net_->learnable_params()) {
      for (int dim : param->shape()) hash.Update(&dim, sizeof(dim));
      const int end = -1;
      hash.Update(&end, sizeof(end));
    }
    for (const GradientBucket& bucket : buckets_) hash.Update(&bucket.count, sizeof(bucket.count));
    mismatches = CountMismatches(hash.Final());
    if (mismatches > 0) return;
    auto from_rank0 = [this](Tensor* tensor) {
      comm_->Broadcast(tensor->mutable_data(), static_cast<size_t>(tensor->count()) * sizeof(float),
                       0);
    };
    for (Tensor* param : net_->learnable_params()) from_rank0(param);
    for (Tensor* tensor : extra) from_rank0(tensor);
  });
  COS_CHECK(mismatches == 0, ConfigError, "data parallel: ", mismatches,
            " rank(s) built a net whose learnable parameters differ in number or shape from "
            "rank 0's; every rank must train the same net (", comm_->PeerName(comm_->rank()), ")");
}

DataParallelStats DataParallel::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

std::vector<IterationTimes> DataParallel::timeline() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::vector<IterationTimes>(timeline_.begin(), timeline_.end());
}

}  // namespace caffeonspark
