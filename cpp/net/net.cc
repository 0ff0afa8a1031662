#include "net/net.h"

#include <set>

#include "core/math.h"
#include "layers/registry.h"

namespace caffeonspark {

Net::Net(std::string name, std::vector<LayerSpec> specs, bool force_backward)
    : name_(std::move(name)) {
  const int n = static_cast<int>(specs.size());
  bottom_vecs_.resize(n);
  top_vecs_.resize(n);
  bottom_id_vecs_.resize(n);
  top_id_vecs_.resize(n);
  bottom_need_backward_.resize(n);
  layer_param_ids_.resize(n);
  for (int layer_id = 0; layer_id < n; ++layer_id) {
    layers_.push_back(CreateLayer(specs[layer_id]));
    Layer& layer = *layers_.back();
    const LayerSpec& spec = layer.spec();
    layer_names_.push_back(spec.name);
    COS_CHECK(spec.propagate_down.empty() || spec.propagate_down.size() == spec.bottoms.size(),
              ConfigError, layer.where(), "propagate_down must be given once per bottom");
    bool need_backward = false;
    for (int b = 0; b < static_cast<int>(spec.bottoms.size()); ++b) {
      int blob_id = AppendBottom(layer_id, b);
      need_backward |= blob_need_backward_[blob_id];
    }
    for (int t = 0; t < static_cast<int>(spec.tops.size()); ++t) AppendTop(layer_id, t);
    // Loss layers with no named top get anonymous ones.
    if (layer.AutoTopBlobs()) {
      int wanted = std::max(layer.MinTopBlobs(), layer.ExactNumTopBlobs());
      for (int t = static_cast<int>(spec.tops.size()); t < wanted; ++t) AppendTop(layer_id, -1);
    }
    layer.SetUp(bottom_vecs_[layer_id], top_vecs_[layer_id]);
    for (size_t t = 0; t < top_id_vecs_[layer_id].size(); ++t) {
      int blob_id = top_id_vecs_[layer_id][t];
      if (blob_loss_weights_.size() <= static_cast<size_t>(blob_id)) blob_loss_weights_.resize(blob_id + 1, 0);
      blob_loss_weights_[blob_id] = layer.loss(static_cast<int>(t));
    }
    for (int p = 0; p < static_cast<int>(layer.blobs().size()); ++p) AppendParam(layer_id, p);
    for (int p = 0; p < static_cast<int>(layer.blobs().size()); ++p) {
      int learnable = learnable_param_ids_[layer_param_ids_[layer_id][p]];
      bool param_need_backward = params_lr_[learnable] != 0;
      need_backward |= param_need_backward;
      layer.set_param_propagate_down(p, param_need_backward);
    }
    for (int blob_id : top_id_vecs_[layer_id]) blob_need_backward_[blob_id] = need_backward;
    layer_need_backward_.push_back(need_backward);
  }
  ComputeBackwardNeeds(force_backward);
  for (const auto& [blob_name, blob_id] : available_blobs_) output_blobs_.push_back(blob_id);
  for (int i = 0; i < n; ++i) {
    if (layers_[i]->spec().type == "Input") {
      for (int id : top_id_vecs_[i]) input_blobs_.push_back(id);
    }
  }
}

int Net::AppendBottom(int layer_id, int bottom_id) {
  const Layer& layer = *layers_[layer_id];
  const std::string& blob_name = layer.spec().bottoms[bottom_id];
  auto it = blob_index_.find(blob_name);
  COS_CHECK(it != blob_index_.end(), ConfigError, layer.where(), "unknown bottom blob '",
            blob_name, "' (no earlier layer produces it)");
  int blob_id = it->second;
  bottom_vecs_[layer_id].push_back(blobs_[blob_id].get());
  bottom_id_vecs_[layer_id].push_back(blob_id);
  available_blobs_.erase(blob_name);
  bool need = blob_need_backward_[blob_id];
  if (!layer.spec().propagate_down.empty()) need = layer.spec().propagate_down[bottom_id];
  bottom_need_backward_[layer_id].push_back(need);
  return blob_id;
}

void Net::AppendTop(int layer_id, int top_id) {
  const Layer& layer = *layers_[layer_id];
  const LayerSpec& spec = layer.spec();
  std::string blob_name = top_id < 0 ? Msg("(automatic top of ", spec.name, ")") : spec.tops[top_id];
  bool in_place = top_id >= 0 && top_id < static_cast<int>(spec.bottoms.size()) &&
                  spec.bottoms[top_id] == blob_name;
  int blob_id;
  if (in_place) {
    blob_id = blob_index_.at(blob_name);
  } else {
    COS_CHECK(blob_index_.count(blob_name) == 0, ConfigError, layer.where(), "top blob '",
              blob_name, "' is produced by more than one layer");
    blob_id = static_cast<int>(blobs_.size());
    blobs_.push_back(std::make_shared<Tensor>());
    blob_names_.push_back(blob_name);
    blob_need_backward_.push_back(false);
    blob_index_[blob_name] = blob_id;
  }
  top_vecs_[layer_id].push_back(blobs_[blob_id].get());
  top_id_vecs_[layer_id].push_back(blob_id);
  available_blobs_[blob_name] = blob_id;
}

void Net::AppendParam(int layer_id, int param_id) {
  Layer& layer = *layers_[layer_id];
  const auto& specs = layer.spec().param_specs;
  ParamSpecInfo spec = param_id < static_cast<int>(specs.size()) ? specs[param_id] : ParamSpecInfo{};
  int net_param_id = static_cast<int>(params_.size());
  std::shared_ptr<Tensor> blob = layer.blobs()[param_id];
  params_.push_back(blob);
  param_layer_indices_.emplace_back(layer_id, param_id);
  layer_param_ids_[layer_id].push_back(net_param_id);
  auto owner_it = spec.name.empty() ? param_names_index_.end() : param_names_index_.find(spec.name);
  if (owner_it == param_names_index_.end()) {
    if (!spec.name.empty()) param_names_index_[spec.name] = net_param_id;
    param_owners_.push_back(-1);
    learnable_param_ids_.push_back(static_cast<int>(learnable_params_.size()));
    learnable_params_.push_back(blob.get());
    learnable_owned_.push_back(blob);
    params_lr_.push_back(spec.lr_mult);
    params_weight_decay_.push_back(spec.decay_mult);
    has_params_lr_.push_back(spec.has_lr_mult);
    has_params_decay_.push_back(spec.has_decay_mult);
    return;
  }
  int owner_id = owner_it->second;
  param_owners_.push_back(owner_id);
  const Tensor& owner = *params_[owner_id];
  if (spec.permissive) {
    COS_CHECK(owner.count() == blob->count(), ShapeError, layer.where(), "shared parameter '",
              spec.name, "' has ", blob->count(), " elements but its owner has ", owner.count());
  } else {
    COS_CHECK(owner.shape() == blob->shape(), ShapeError, layer.where(), "shared parameter '",
              spec.name, "' has shape ", blob->shape_string(), " but its owner has ",
              owner.shape_string(), " (use share_mode PERMISSIVE to compare counts only)");
  }
  int learnable_id = learnable_param_ids_[owner_id];
  learnable_param_ids_.push_back(learnable_id);
  blob->ShareData(owner);
  blob->ShareDiff(owner);
  if (spec.has_lr_mult) {
    if (has_params_lr_[learnable_id]) {
      COS_CHECK(params_lr_[learnable_id] == spec.lr_mult, ConfigError, layer.where(),
                "shared parameter '", spec.name, "' has conflicting lr_mult values");
    } else {
      has_params_lr_[learnable_id] = true;
      params_lr_[learnable_id] = spec.lr_mult;
    }
  }
  if (spec.has_decay_mult) {
    if (has_params_decay_[learnable_id]) {
      COS_CHECK(params_weight_decay_[learnable_id] == spec.decay_mult, ConfigError, layer.where(),
                "shared parameter '", spec.name, "' has conflicting decay_mult values");
    } else {
      has_params_decay_[learnable_id] = true;
      params_weight_decay_[learnable_id] = spec.decay_mult;
    }
  }
}

void Net::ComputeBackwardNeeds(bool force_backward) {
  // Walk backwards: a layer whose tops reach no loss needs no backward; a bottom whose
  // gradient nobody upstream needs is skipped.
  std::set<int> blobs_under_loss, blobs_skip_backprop;
  for (int layer_id = num_layers() - 1; layer_id >= 0; --layer_id) {
    Layer& layer = *layers_[layer_id];
    bool contributes_loss = false, skip_propagate_down = true;
    for (size_t t = 0; t < top_id_vecs_[layer_id].size(); ++t) {
      int blob_id = top_id_vecs_[layer_id][t];
      if (layer.loss(static_cast<int>(t)) != 0 || blobs_under_loss.count(blob_id)) contributes_loss = true;
      if (!blobs_skip_backprop.count(blob_id)) skip_propagate_down = false;
    }
    if (layer_need_backward_[layer_id] && skip_propagate_down) {
      layer_need_backward_[layer_id] = false;
      for (size_t b = 0; b < bottom_need_backward_[layer_id].size(); ++b)
        bottom_need_backward_[layer_id][b] = false;
    }
    if (!contributes_loss) layer_need_backward_[layer_id] = false;
    for (size_t b = 0; b < bottom_id_vecs_[layer_id].size(); ++b) {
      int blob_id = bottom_id_vecs_[layer_id][b];
      if (contributes_loss) {
        blobs_under_loss.insert(blob_id);
      } else {
        bottom_need_backward_[layer_id][b] = false;
      }
      if (!bottom_need_backward_[layer_id][b]) blobs_skip_backprop.insert(blob_id);
    }
  }
  if (!force_backward) return;
  for (int layer_id = 0; layer_id < num_layers(); ++layer_id) {
    Layer& layer = *layers_[layer_id];
    layer_need_backward_[layer_id] = true;
    for (size_t b = 0; b < bottom_need_backward_[layer_id].size(); ++b) {
      bool allowed = layer.AllowForceBackward(static_cast<int>(b));
      bottom_need_backward_[layer_id][b] = bottom_need_backward_[layer_id][b] || allowed;
      int blob_id = bottom_id_vecs_[layer_id][b];
      blob_need_backward_[blob_id] = blob_need_backward_[blob_id] || allowed;
    }
    for (size_t p = 0; p < layer.blobs().size(); ++p) layer.set_param_propagate_down(static_cast<int>(p), true);
  }
}

int Net::layer_index(const std::string& name) const {
  for (size_t i = 0; i < layer_names_.size(); ++i)
    if (layer_names_[i] == name) return static_cast<int>(i);
  return -1;
}

const std::shared_ptr<Tensor>& Net::blob(const std::string& name) const {
  auto it = blob_index_.find(name);
  COS_CHECK(it != blob_index_.end(), ConfigError, "net '", name_, "' has no blob '", name, "'");
  return blobs_[it->second];
}

int Net::learnable_param_id(int layer, int i) const {
  return learnable_param_ids_[layer_param_ids_[layer][i]];
}

float Net::ForwardFromTo(int start, int end) {
  float loss = 0;
  for (int i = start; i <= end; ++i) loss += layers_[i]->Forward(bottom_vecs_[i], top_vecs_[i]);
  return loss;
}

float Net::Forward() { return ForwardFromTo(0, num_layers() - 1); }

void Net::BackwardFromTo(int start, int end) {
  for (int i = start; i >= end; --i) {
    if (layer_need_backward_[i])
      layers_[i]->Backward(top_vecs_[i], bottom_need_backward_[i], bottom_vecs_[i]);
    if (after_layer_backward_) after_layer_backward_(i);
  }
}

void Net::Backward() { BackwardFromTo(num_layers() - 1, 0); }

void Net::Reshape() {
  for (int i = 0; i < num_layers(); ++i) layers_[i]->Reshape(bottom_vecs_[i], top_vecs_[i]);
}

void Net::ClearParamDiffs() {
  for (Tensor* p : learnable_params_) fill(p->count(), 0.0f, p->mutable_diff());
}

void Net::Update() {
  for (Tensor* p : learnable_params_) axpy(p->count(), -1.0f, p->diff(), p->mutable_data());
}

void Net::ShareTrainedLayersWith(const Net& other) {
  for (int i = 0; i < other.num_layers(); ++i) {
    int target = layer_index(other.layer_names_[i]);
    if (target < 0) continue;
    auto& source_blobs = other.layers_[i]->blobs();
    auto& target_blobs = layers_[target]->blobs();
    COS_CHECK(source_blobs.size() == target_blobs.size(), ShapeError, layers_[target]->where(),
              "has ", target_blobs.size(), " parameter blobs but the net it shares weights with has ",
              source_blobs.size());
    for (size_t j = 0; j < source_blobs.size(); ++j) {
      COS_CHECK(source_blobs[j]->shape() == target_blobs[j]->shape(), ShapeError,
                layers_[target]->where(), "parameter ", j, " has shape ",
                target_blobs[j]->shape_string(), " but the shared one has ",
                source_blobs[j]->shape_string());
      target_blobs[j]->ShareData(*source_blobs[j]);
    }
  }
}

}  // namespace caffeonspark
