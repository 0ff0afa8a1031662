// DataParallel: synchronous data-parallel training of one Net over a Communicator (Caffe's
// multi-GPU rule, docs/CAFFE.md §4.3: gradients summed over ranks, scaled by 1/P, before
// ApplyUpdate; effective batch = P x batch_size; rank 0's weights broadcast at start).
//
// Buckets: the learnable parameters with lr_mult != 0, in reverse layer order (a parameter
// is ready after the backward of the lowest layer that uses it, sharers included), packed
// into buckets: the first holds at most first_bucket_bytes (so reduction starts early),
// later ones at most bucket_bytes (a parameter larger than the cap gets a bucket alone).
// The plan depends only on the net, so it is the same on every rank (BroadcastState checks
// the nets' parameter shapes agree). Parameters with lr_mult 0 (BatchNorm statistics,
// frozen layers) are never reduced: they stay per rank, as in Caffe.
//
// Per iteration: during the last of the iter_size passes, Net's after-layer-backward hook
// packs a bucket's diffs as soon as its last parameter is final and hands it to the comm
// thread, which averages it (ring allreduce) while backward continues on earlier layers.
// FinishGradients waits for every bucket and unpacks the averages into the diffs. With
// check_params, AfterUpdate compares a SHA-256 of the reduced parameters across ranks and
// throws CommError on a mismatch. Between iterations the comm thread keeps the links alive
// (heartbeats), so a rank busy testing or snapshotting is not taken for a dead one.
// Tests: tests/distributed/test_data_parallel.py.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/sha256.h"
#include "net/net.h"
#include "solver/solver.h"

namespace caffeonspark {

struct DataParallelOptions {
  size_t first_bucket_bytes = 256 << 10;  // tools/bench_allreduce.py --overlap chose these
  size_t bucket_bytes = 1 << 20;
  bool check_params = false;
};

struct GradientBucket {
  std::vector<int> params;  // learnable parameter ids, packing order
  size_t count = 0;         // floats
  int ready_layer = 0;      // the bucket is final once this layer's backward has run
};

// One iteration seen from this rank, in seconds of the steady clock (CLOCK_MONOTONIC, the
// same clock in every process of a machine): when backward ended (FinishGradients was
// entered) and when every bucket was reduced.
struct IterationTimes {
  double backward_end = 0;
  double reduced = 0;
};

struct DataParallelStats {
  long iterations = 0;
  double comm_seconds = 0;     // comm thread inside bucket allreduces
  double wait_seconds = 0;     // solver thread waiting for buckets (communication not hidden)
  double check_seconds = 0;    // parameter checksums (check_params)
};

class DataParallel final : public GradientSync {
 public:
  DataParallel(std::shared_ptr<Net> net, std::shared_ptr<comm::Communicator> comm,
               DataParallelOptions options);
  ~DataParallel() override;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Before training: checks that every rank has the same parameter shapes (ConfigError on
  // all ranks otherwise), then copies rank 0's learnable parameters and `extra` tensors (the
  // solver's history) to every rank.
  void BroadcastState(const std::vector<Tensor*>& extra);

  void BeforePass(bool last) override;
  void FinishGradients() override;
  void AfterUpdate(int iter) override;

  // Ends the comm thread (aborting the communicator if a reduction is still in flight).
  void Stop();

  const std::vector<GradientBucket>& buckets() const { return buckets_; }
  DataParallelStats stats() const;
  // The last (at most 1024) iterations, oldest first.
  std::vector<IterationTimes> timeline() const;
  const std::shared_ptr<comm::Communicator>& communicator() const { return comm_; }

 private:
  void PlanBuckets();
  void OnLayerBackward(int layer);
  void Launch(size_t bucket);
  void Post(std::function<void()> task);
  void RunOnCommThread(std::function<void()> task);
  void CommLoop();
  void RethrowCommError();
  comm::Digest ParamDigest() const;
  // Every rank learns whether any rank's `digest` differs from rank 0's: the count of such
  // ranks (0 when all agree).
  int CountMismatches(const comm::Digest& digest);

  std::shared_ptr<Net> net_;
  std::shared_ptr<comm::Communicator> comm_;
  DataParallelOptions options_;
  std::vector<GradientBucket> buckets_;
  std::vector<std::vector<float>> buffers_;

  // Solver thread state.
  bool armed_ = false;
  size_t next_launch_ = 0;

  // Shared with the comm thread (under mutex_).
  mutable std::mutex mutex_;
  std::condition_variable wake_comm_, wake_solver_;
  std::deque<std::function<void()>> tasks_;
  size_t buckets_done_ = 0;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  DataParallelStats stats_;
  std::deque<IterationTimes> timeline_;
  std::thread thread_;
};

}  // namespace caffeonspark
