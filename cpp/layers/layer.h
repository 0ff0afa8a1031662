// The Layer contract (Caffe's): SetUp = count checks + LayerSetUp + Reshape + loss weights;
// Forward returns the layer's weighted loss; Backward honours propagate_down and ADDS into
// parameter gradients (iter_size and weight sharing depend on that). Each layer family lives
// in cpp/layers/<family>.{h,cc} with tests in tests/layers/test_<family>.py.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/params.h"
#include "core/tensor.h"

namespace caffeonspark {

enum class Phase { kTrain = 0, kTest = 1 };

struct ParamSpecInfo {
  std::string name;
  bool permissive = false;  // share_mode PERMISSIVE: shared blobs need equal counts only
  float lr_mult = 1.0f;
  float decay_mult = 1.0f;
  bool has_lr_mult = false;
  bool has_decay_mult = false;
};

// Everything the engine needs to build one layer; produced by python/caffeonspark/engine.py.
struct LayerSpec {
  std::string name;
  std::string type;
  std::vector<std::string> bottoms;
  std::vector<std::string> tops;
  Phase phase = Phase::kTest;
  std::vector<float> loss_weights;
  std::vector<ParamSpecInfo> param_specs;
  std::vector<bool> propagate_down;  // empty, or one per bottom
  Params params;                     // "<type>_param" children with defaults filled in
  std::string where;                 // "file:line" of the layer, for error messages
};

using Tensors = std::vector<Tensor*>;

class Layer {
 public:
  explicit Layer(LayerSpec spec) : spec_(std::move(spec)), phase_(spec_.phase) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual const char* type() const = 0;

  void SetUp(const Tensors& bottom, const Tensors& top);
  virtual void LayerSetUp(const Tensors& bottom, const Tensors& top) {}
  virtual void Reshape(const Tensors& bottom, const Tensors& top) = 0;

  // Runs the layer and returns sum over tops of loss_weight * sum(top data).
  float Forward(const Tensors& bottom, const Tensors& top);
  void Backward(const Tensors& top, const std::vector<bool>& propagate_down,
                const Tensors& bottom);

  // Blob-count contract, checked once in SetUp (-1 = no constraint).
  virtual int ExactNumBottomBlobs() const { return -1; }
  virtual int MinBottomBlobs() const { return -1; }
  virtual int MaxBottomBlobs() const { return -1; }
  virtual int ExactNumTopBlobs() const { return -1; }
  virtual int MinTopBlobs() const { return -1; }
  virtual int MaxTopBlobs() const { return -1; }
  virtual bool EqualNumBottomTopBlobs() const { return false; }
  // Loss layers create an anonymous top when none is named.
  virtual bool AutoTopBlobs() const { return false; }
  // False for inputs no gradient can flow into (labels of losses).
  virtual bool AllowForceBackward(int bottom_index) const { return true; }
  // Data layers: no bottoms and never backward.
  virtual bool IsDataLayer() const { return false; }

  std::vector<std::shared_ptr<Tensor>>& blobs() { return blobs_; }
  const LayerSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  Phase phase() const { return phase_; }

  float loss(int top_index) const {
    return top_index < static_cast<int>(loss_.size()) ? loss_[top_index] : 0.0f;
  }
  void set_loss(int top_index, float value);
  bool param_propagate_down(int i) const {
    return i < static_cast<int>(param_propagate_down_.size()) && param_propagate_down_[i];
  }
  void set_param_propagate_down(int i, bool value);

  // "layer 'conv1' (Convolution) at net.prototxt:12: " prefix for errors.
  std::string where() const;

 protected:
  virtual void Forward_cpu(const Tensors& bottom, const Tensors& top) = 0;
  virtual void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                            const Tensors& bottom) = 0;
  // Default loss weight of top i (LossLayer overrides: 1 for top 0).
  virtual float DefaultLossWeight(int top_index) const { return 0.0f; }

  LayerSpec spec_;
  Phase phase_;
  std::vector<std::shared_ptr<Tensor>> blobs_;
  std::vector<bool> param_propagate_down_;
  std::vector<float> loss_;

 private:
  void CheckBlobCounts(const Tensors& bottom, const Tensors& top) const;
  void SetLossWeights(const Tensors& top);
};

// Throws ErrorType with the layer's location as prefix.
#define COS_LAYER_CHECK(cond, ErrorType, ...) \
  COS_CHECK(cond, ErrorType, where(), __VA_ARGS__)

}  // namespace caffeonspark
