#include "solver/solver.h"

#include <algorithm>

#include "core/errors.h"
#include "core/math.h"

namespace caffeonspark {

namespace {

int IntOr(const Params& p, const char* key, int fallback) {
  return static_cast<int>(p.number_or(key, fallback));
}

bool FlagOr(const Params& p, const char* key, bool fallback) {
  return p.size(key) ? p.flag(key) : fallback;
}

}  // namespace

Solver::Solver(const Params& params, std::shared_ptr<Net> train_net,
               std::vector<std::shared_ptr<Net>> test_nets)
    : net_(std::move(train_net)),
      test_nets_(std::move(test_nets)),
      lr_policy_(params),
      rule_(UpdateRule::Create(params)),
      regularization_(ParseRegularization(params.size("regularization_type")
                                              ? params.str("regularization_type")
                                              : "L2")) {
  COS_CHECK(net_ != nullptr, ConfigError, "solver: no train net");
  if (params.has("test_iter")) test_iter_ = params.integers("test_iter");
  test_interval_ = IntOr(params, "test_interval", 0);
  test_compute_loss_ = FlagOr(params, "test_compute_loss", false);
  test_initialization_ = FlagOr(params, "test_initialization", true);
  display_ = IntOr(params, "display", 0);
  average_loss_ = IntOr(params, "average_loss", 1);
  max_iter_ = IntOr(params, "max_iter", 0);
  iter_size_ = IntOr(params, "iter_size", 1);
  snapshot_ = IntOr(params, "snapshot", 0);
  snapshot_after_train_ = FlagOr(params, "snapshot_after_train", true);
  weight_decay_ = static_cast<float>(params.number_or("weight_decay", 0));
  clip_gradients_ = static_cast<float>(params.number_or("clip_gradients", -1));

  COS_CHECK(test_iter_.size() == test_nets_.size(), ConfigError, "solver: ", test_nets_.size(),
            " test net(s) but ", test_iter_.size(),
            " test_iter value(s); give test_iter once per test net");
  for (size_t i = 0; i < test_nets_.size(); ++i) {
    COS_CHECK(test_nets_[i] != nullptr, ConfigError, "solver: test net #", i, " is missing");
    COS_CHECK(test_iter_[i] >= 0, ConfigError, "solver: test_iter[", i, "] is negative (",
              test_iter_[i], ")");
  }
  COS_CHECK(average_loss_ >= 1, ConfigError, "solver: average_loss must be >= 1, got ",
            average_loss_);
  COS_CHECK(iter_size_ >= 1, ConfigError, "solver: iter_size must be >= 1, got ", iter_size_);
  COS_CHECK(display_ >= 0 && snapshot_ >= 0 && test_interval_ >= 0, ConfigError,
            "solver: display, snapshot and test_interval must not be negative");

  const auto& params_list = net_->learnable_params();
  for (int set = 0; set < rule_->history_sets(); ++set) {
    for (const Tensor* p : params_list) {
      auto h = std::make_shared<Tensor>(p->shape());
      fill(h->count(), 0.0f, h->mutable_data());
      history_.push_back(std::move(h));
    }
  }
}

void Solver::Step(int iters) {
  const int stop_iter = iter_ + std::max(iters, 0);
  losses_.clear();
  smoothed_loss_ = 0;
  stopped_early_ = false;
  stop_requested_.store(false);
  smoothing_start_iter_ = iter_;
  display_clock_ = std::chrono::steady_clock::now();
  iters_at_display_ = iter_;

  while (iter_ < stop_iter) {
    net_->ClearParamDiffs();
    if (test_interval_ > 0 && iter_ % test_interval_ == 0 && (iter_ > 0 || test_initialization_)) {
      TestAll();
      if (stopped_early_) break;
    }
    if (on_start) on_start();
    const bool display = display_ > 0 && iter_ % display_ == 0;
    float loss = 0;
    for (int i = 0; i < iter_size_; ++i) {
      if (on_before_forward) on_before_forward(-1);
      if (sync_) sync_->BeforePass(i + 1 == iter_size_);
      loss += net_->ForwardBackward();
    }
    loss /= static_cast<float>(iter_size_);
    last_loss_ = loss;
    UpdateSmoothedLoss(loss, iter_ - smoothing_start_iter_);

    DisplayInfo info;
    if (display) {
      auto now = std::chrono::steady_clock::now();
      info.iter = iter_;
      info.seconds = std::chrono::duration<double>(now - display_clock_).count();
      info.iters_per_second = (iter_ - iters_at_display_) / (info.seconds > 0 ? info.seconds : 1.0);
      info.loss = loss;
      info.smoothed_loss = smoothed_loss_;
      info.outputs = CurrentOutputs(*net_);
      display_clock_ = now;
      iters_at_display_ = iter_;
    }
    if (sync_) sync_->FinishGradients();
    if (on_gradients_ready) on_gradients_ready();
    info.rate = ApplyUpdate();
    if (sync_) sync_->AfterUpdate(iter_);
    if (display && on_display) on_display(info);
    ++iter_;

    const bool requested = snapshot_requested_.exchange(false);
    if ((snapshot_ > 0 && iter_ % snapshot_ == 0) || requested) Snapshot();
    if (stop_requested_.load()) {
      stopped_early_ = true;
      break;
    }
  }
}

void Solver::Solve() {
  Step(max_iter_ - iter_);
  const bool just_snapshotted = snapshot_ > 0 && iter_ % snapshot_ == 0;
  if (snapshot_after_train_ && !just_snapshotted) Snapshot();
  if (stopped_early_) return;
  if (display_ > 0 && iter_ % display_ == 0) {
    if (on_before_forward) on_before_forward(-1);
    float loss = net_->Forward();
    last_loss_ = loss;
    UpdateSmoothedLoss(loss, iter_ - smoothing_start_iter_);
    DisplayInfo info;
    info.iter = iter_;
    info.final = true;
    info.loss = loss;
    info.smoothed_loss = smoothed_loss_;
    if (on_display) on_display(info);
  }
  if (test_interval_ > 0 && iter_ % test_interval_ == 0) TestAll();
}

float Solver::ApplyUpdate() {
  const float rate = lr_policy_.Rate(iter_, current_step_);
  const auto& params = net_->learnable_params();
  const auto& lr_mults = net_->params_lr();
  const auto& decay_mults = net_->params_weight_decay();
  ClipGradients(params, clip_gradients_);
  const size_t n = params.size();
  for (size_t i = 0; i < n; ++i) {
    Tensor& param = *params[i];
    NormalizeGradient(param, iter_size_);
    RegularizeGradient(param, weight_decay_ * decay_mults[i], regularization_);
    Tensor* second = rule_->history_sets() > 1 ? history_[n + i].get() : nullptr;
    rule_->ComputeUpdateValue(param, rate * lr_mults[i], iter_, *history_[i], second);
  }
  net_->Update();
  return rate;
}

void Solver::UpdateSmoothedLoss(float loss, int window_index) {
  if (static_cast<int>(losses_.size()) < average_loss_) {
    losses_.push_back(loss);
    const float size = static_cast<float>(losses_.size());
    smoothed_loss_ = (smoothed_loss_ * (size - 1) + loss) / size;
  } else {
    const int slot = window_index % average_loss_;
    smoothed_loss_ += (loss - losses_[slot]) / static_cast<float>(average_loss_);
    losses_[slot] = loss;
  }
}

std::vector<OutputValues> Solver::CurrentOutputs(const Net& net) const {
  std::vector<OutputValues> out;
  for (int blob_id : net.output_blob_indices()) {
    const Tensor& blob = *net.blob_at(blob_id);
    OutputValues values;
    values.name = net.blob_names()[blob_id];
    values.loss_weight = net.blob_loss_weights()[blob_id];
    values.values.assign(blob.data(), blob.data() + blob.count());
    out.push_back(std::move(values));
  }
  return out;
}

std::vector<TestResult> Solver::TestAll() {
  std::vector<TestResult> results;
  for (size_t i = 0; i < test_nets_.size() && !stopped_early_; ++i)
    results.push_back(Test(static_cast<int>(i)));
  return results;
}

TestResult Solver::Test(int test_net_id) {
  COS_CHECK(test_net_id >= 0 && test_net_id < static_cast<int>(test_nets_.size()), ConfigError,
            "solver: no test net #", test_net_id, " (", test_nets_.size(), " test nets)");
  Net& net = *test_nets_[test_net_id];
  net.ShareTrainedLayersWith(*net_);
  TestResult result;
  result.test_net = test_net_id;
  result.iter = iter_;
  result.test_iter = test_iter_[test_net_id];
  result.has_loss = test_compute_loss_;
  std::vector<double> sums;
  double loss = 0;
  for (int i = 0; i < result.test_iter; ++i) {
    if (PollRequests()) {
      stopped_early_ = true;
      result.interrupted = true;
      break;
    }
    if (on_before_forward) on_before_forward(test_net_id);
    loss += net.Forward();
    size_t k = 0;
    for (int blob_id : net.output_blob_indices()) {
      const Tensor& blob = *net.blob_at(blob_id);
      if (i == 0) sums.resize(sums.size() + blob.count(), 0.0);
      for (int64_t e = 0; e < blob.count(); ++e) sums[k++] += blob.data()[e];
    }
  }
  if (!result.interrupted && result.test_iter > 0) {
    const double count = result.test_iter;
    if (test_compute_loss_) result.loss = static_cast<float>(loss / count);
    size_t k = 0;
    for (int blob_id : net.output_blob_indices()) {
      OutputValues values;
      values.name = net.blob_names()[blob_id];
      values.loss_weight = net.blob_loss_weights()[blob_id];
      const int64_t n = net.blob_at(blob_id)->count();
      for (int64_t e = 0; e < n; ++e, ++k)
        values.values.push_back(static_cast<float>(sums[k] / count));
      result.outputs.push_back(std::move(values));
    }
  }
  if (on_test) on_test(result);
  return result;
}

void Solver::Snapshot() {
  snapshot_requested_.store(false);
  if (on_snapshot) on_snapshot();
}

bool Solver::PollRequests() {
  if (snapshot_requested_.exchange(false)) Snapshot();
  return stop_requested_.load();
}

}  // namespace caffeonspark
