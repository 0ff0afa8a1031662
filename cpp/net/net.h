// Net: the DAG of layers built from specs that Python already filtered by phase and gave
// Split layers (python/caffeonspark/netspec.py). Here: blobs by name, in-place tops, loss
// weights, parameter sharing by name, which layers need backward (pruning, propagate_down,
// force_backward), and forward/backward/update. Tests: tests/net/test_net.py.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class Net {
 public:
  Net(std::string name, std::vector<LayerSpec> specs, bool force_backward);

  const std::string& name() const { return name_; }

  float Forward();                      // all layers; returns the total weighted loss
  float ForwardFromTo(int start, int end);
  void Backward();
  void BackwardFromTo(int start, int end);
  float ForwardBackward() { float loss = Forward(); Backward(); return loss; }
  void Reshape();
  void ClearParamDiffs();
  void Update();                        // w -= diff for every owned learnable param
  // Called inside BackwardFromTo after each layer index (even one that needs no backward),
  // so data-parallel training can reduce finished gradients while backward goes on.
  void set_after_layer_backward(std::function<void(int)> hook) { after_layer_backward_ = std::move(hook); }
  // Test nets share the train net's weights by layer name (data only, not diffs).
  void ShareTrainedLayersWith(const Net& other);

  int num_layers() const { return static_cast<int>(layers_.size()); }
  Layer& layer(int i) { return *layers_[i]; }
  const std::vector<std::string>& layer_names() const { return layer_names_; }
  int layer_index(const std::string& name) const;
  const std::vector<std::string>& blob_names() const { return blob_names_; }
  const std::shared_ptr<Tensor>& blob(const std::string& name) const;
  bool has_blob(const std::string& name) const { return blob_index_.count(name) > 0; }
  const std::vector<int>& output_blob_indices() const { return output_blobs_; }
  const std::vector<int>& input_blob_indices() const { return input_blobs_; }
  const std::shared_ptr<Tensor>& blob_at(int i) const { return blobs_[i]; }
  const std::vector<float>& blob_loss_weights() const { return blob_loss_weights_; }

  bool layer_need_backward(int i) const { return layer_need_backward_[i]; }
  const std::vector<bool>& bottom_need_backward(int i) const { return bottom_need_backward_[i]; }
  const std::vector<int>& top_ids(int i) const { return top_id_vecs_[i]; }
  const std::vector<int>& bottom_ids(int i) const { return bottom_id_vecs_[i]; }

  // Learnable parameters: owners only, in layer order x blob index (the solverstate order).
  const std::vector<Tensor*>& learnable_params() const { return learnable_params_; }
  const std::vector<std::shared_ptr<Tensor>>& learnable_param_tensors() const { return learnable_owned_; }
  const std::vector<float>& params_lr() const { return params_lr_; }
  const std::vector<float>& params_weight_decay() const { return params_weight_decay_; }
  // Per layer param i -> index into learnable_params (owners and sharers alike).
  int learnable_param_id(int layer, int i) const;

 private:
  void AppendTop(int layer_id, int top_id);
  int AppendBottom(int layer_id, int bottom_id);
  void AppendParam(int layer_id, int param_id);
  void ComputeBackwardNeeds(bool force_backward);

  std::string name_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::string> layer_names_;
  std::vector<bool> layer_need_backward_;

  std::vector<std::shared_ptr<Tensor>> blobs_;
  std::vector<std::string> blob_names_;
  std::map<std::string, int> blob_index_;
  std::vector<bool> blob_need_backward_;
  std::vector<float> blob_loss_weights_;
  std::vector<int> input_blobs_;
  std::vector<int> output_blobs_;
  std::map<std::string, int> available_blobs_;  // produced but not yet consumed

  std::vector<Tensors> bottom_vecs_, top_vecs_;
  std::vector<std::vector<int>> bottom_id_vecs_, top_id_vecs_;
  std::vector<std::vector<bool>> bottom_need_backward_;

  // All parameter blobs (per layer, per index), with their owners when shared.
  std::vector<std::shared_ptr<Tensor>> params_;
  std::vector<int> param_owners_;                 // -1 for owners
  std::vector<std::pair<int, int>> param_layer_indices_;
  std::map<std::string, int> param_names_index_;
  std::vector<int> learnable_param_ids_;          // per entry of params_
  std::vector<std::vector<int>> layer_param_ids_; // per layer: indices into params_
  std::vector<Tensor*> learnable_params_;
  std::vector<std::shared_ptr<Tensor>> learnable_owned_;
  std::vector<float> params_lr_, params_weight_decay_;
  std::vector<bool> has_params_lr_, has_params_decay_;
  std::function<void(int)> after_layer_backward_;
};

}  // namespace caffeonspark
