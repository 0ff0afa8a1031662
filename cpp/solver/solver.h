// Solver: Caffe's training loop over one train Net and its test Nets (docs/CAFFE.md §4.1–§4.5).
// Python builds the nets (phase/stage filtering, weight sharing of the test nets with the
// train net) and hands over the SolverParameter's scalar fields as Params; this class owns
// the loop, the learning-rate policy, the update rule and its history.
//
// Step(n), per iteration (iter = updates applied so far):
//   zero the param diffs; test every test net when test_interval > 0,
//   iter % test_interval == 0 and (iter > 0 || test_initialization); on_start;
//   iter_size x (on_before_forward(-1); forward; backward) summing the loss; loss /= iter_size;
//   smoothed loss over the last average_loss losses; the GradientSync (when attached: the
//   gradient allreduce of data-parallel training) finishes the gradients; on_gradients_ready;
//   ApplyUpdate (rate, clip, normalize, regularize, update
//   value, Net::Update); on_display when display > 0 and iter % display == 0 (before ++iter,
//   with the rate just used); ++iter; on_snapshot when snapshot > 0 and iter % snapshot == 0
//   or when one was requested. A stop request ends the loop after the current iteration.
// Solve(): Step(max_iter - iter); on_snapshot if snapshot_after_train and the last
//   iteration did not just snapshot; unless stopped early: a forward-only pass reported with
//   on_display (final = true) when iter % display == 0, and a test when iter % test_interval
//   == 0.
// Test(i): test_iter[i] forwards of test net i (on_before_forward(i) before each); each
//   output element averaged over them (the loss too, when test_compute_loss).
//
// Callbacks are plain std::function (empty = skipped); the Python binding wraps them so they
// take the GIL. The solver never writes files: snapshots go through on_snapshot.
// Tests: tests/solver/test_solver.py.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/params.h"
#include "net/net.h"
#include "solver/lr_policy.h"
#include "solver/update_rules.h"

namespace caffeonspark {

// The averaged (test) or current (train) values of one net output blob.
struct OutputValues {
  std::string name;
  float loss_weight = 0;       // the blob's loss weight (0 for metrics such as accuracy)
  std::vector<float> values;   // one per element of the blob
};

struct DisplayInfo {
  int iter = 0;                // the iteration displayed (before its ++iter)
  bool final = false;          // Solve's last forward-only pass (no rate, no outputs)
  double seconds = 0;          // since the previous display (or the start of Step)
  double iters_per_second = 0;
  float loss = 0;              // this iteration's loss (averaged over iter_size)
  float smoothed_loss = 0;
  float rate = 0;              // learning rate used by this iteration's update
  std::vector<OutputValues> outputs;
};

// Data-parallel training plugs in here (cpp/solver/data_parallel.h): the loop tells it
// which pass completes an iteration's gradients and waits for it before the update.
class GradientSync {
 public:
  virtual ~GradientSync() = default;
  // Before each of the iter_size forward/backward passes; `last` for the one that makes
  // the gradients final.
  virtual void BeforePass(bool last) = 0;
  // After the passes, before on_gradients_ready and ApplyUpdate: gradients final here.
  virtual void FinishGradients() = 0;
  // After Net::Update of iteration `iter`.
  virtual void AfterUpdate(int iter) = 0;
};

struct TestResult {
  int test_net = 0;
  int iter = 0;
  int test_iter = 0;           // forwards averaged
  bool interrupted = false;    // a stop request cut the test short (outputs are empty)
  bool has_loss = false;       // test_compute_loss
  float loss = 0;
  std::vector<OutputValues> outputs;
};

class Solver {
 public:
  // `params`: the SolverParameter's scalar and repeated scalar fields (netspec.fill_defaults;
  // nets and states omitted). `test_nets` must already share the train net's weights.
  Solver(const Params& params, std::shared_ptr<Net> train_net,
         std::vector<std::shared_ptr<Net>> test_nets);

  void Step(int iters);
  void Solve();
  TestResult Test(int test_net_id);
  std::vector<TestResult> TestAll();
  // One update from the diffs already in the net (Caffe's ApplyUpdate); returns the rate.
  // Does not advance iter.
  float ApplyUpdate();

  // ---- state -------------------------------------------------------------------------
  const std::shared_ptr<Net>& net() const { return net_; }
  const std::vector<std::shared_ptr<Net>>& test_nets() const { return test_nets_; }
  int iter() const { return iter_; }
  void set_iter(int iter) { iter_ = iter; }
  int current_step() const { return current_step_; }
  void set_current_step(int step) { current_step_ = step; }
  // history_sets() x learnable params, in solverstate order (first set, then the second).
  const std::vector<std::shared_ptr<Tensor>>& history() const { return history_; }
  const UpdateRule& rule() const { return *rule_; }
  const LrPolicy& lr_policy() const { return lr_policy_; }
  float smoothed_loss() const { return smoothed_loss_; }
  const std::vector<float>& recent_losses() const { return losses_; }
  float last_loss() const { return last_loss_; }
  int max_iter() const { return max_iter_; }

  // Null detaches. The solver keeps a reference while attached.
  void set_gradient_sync(std::shared_ptr<GradientSync> sync) { sync_ = std::move(sync); }
  const std::shared_ptr<GradientSync>& gradient_sync() const { return sync_; }

  // Thread- and signal-safe: the loop stops after the current iteration (or test forward).
  void RequestStop() { stop_requested_.store(true); }
  // The loop snapshots after the current iteration.
  void RequestSnapshot() { snapshot_requested_.store(true); }
  bool stopped_early() const { return stopped_early_; }

  // ---- callbacks -----------------------------------------------------------------------
  std::function<void()> on_start;                 // each iteration, before forward
  std::function<void(int)> on_before_forward;     // -1: train net, i: test net i
  std::function<void()> on_gradients_ready;       // between backward and ApplyUpdate
  std::function<void(const DisplayInfo&)> on_display;
  std::function<void(const TestResult&)> on_test;
  std::function<void()> on_snapshot;

 private:
  void UpdateSmoothedLoss(float loss, int window_index);
  std::vector<OutputValues> CurrentOutputs(const Net& net) const;
  void Snapshot();
  // Handles pending snapshot requests; returns true when a stop was requested.
  bool PollRequests();

  std::shared_ptr<Net> net_;
  std::vector<std::shared_ptr<Net>> test_nets_;
  LrPolicy lr_policy_;
  std::unique_ptr<UpdateRule> rule_;
  Regularization regularization_;

  // SolverParameter fields (defaults: docs/CAFFE.md §4.5).
  std::vector<int> test_iter_;
  int test_interval_ = 0;
  bool test_compute_loss_ = false, test_initialization_ = true;
  int display_ = 0, average_loss_ = 1, max_iter_ = 0, iter_size_ = 1, snapshot_ = 0;
  bool snapshot_after_train_ = true;
  float weight_decay_ = 0, clip_gradients_ = -1;

  int iter_ = 0;
  int smoothing_start_iter_ = 0;   // iter at the start of the current Step
  int current_step_ = 0;
  std::vector<std::shared_ptr<Tensor>> history_;
  std::vector<float> losses_;
  float smoothed_loss_ = 0, last_loss_ = 0;

  std::chrono::steady_clock::time_point display_clock_;
  int iters_at_display_ = 0;
  std::atomic<bool> stop_requested_{false}, snapshot_requested_{false};
  bool stopped_early_ = false;
  std::shared_ptr<GradientSync> sync_;
};

}  // namespace caffeonspark
