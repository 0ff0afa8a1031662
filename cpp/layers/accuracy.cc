// Accuracy (rules in accuracy.h). Tests: tests/layers/test_accuracy.py.
#include "layers/accuracy.h"

#include <vector>

namespace caffeonspark {

void AccuracyLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("accuracy_param");
  top_k_ = p.integer("top_k");
  COS_LAYER_CHECK(top_k_ >= 1, ConfigError, "accuracy_param.top_k must be at least 1, got ", top_k_);
  has_ignore_label_ = p.size("ignore_label") > 0;
  if (has_ignore_label_) ignore_label_ = p.integer("ignore_label");
}

void AccuracyLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  axis_ = bottom[0]->CanonicalAxis(spec_.params.child("accuracy_param").integer("axis"));
  outer_ = bottom[0]->count(0, axis_);
  classes_ = bottom[0]->shape(axis_);
  inner_ = bottom[0]->count(axis_ + 1);
  COS_LAYER_CHECK(top_k_ <= classes_, ConfigError, "top_k ", top_k_,
                  " exceeds the number of classes ", classes_, " of the scores ",
                  bottom[0]->shape_string());
  COS_LAYER_CHECK(outer_ * inner_ == bottom[1]->count(), ShapeError, "label count ",
                  bottom[1]->count(), " must equal outer*inner = ", outer_ * inner_,
                  " of the scores ", bottom[0]->shape_string(), " along axis ", axis_,
                  " (labels ", bottom[1]->shape_string(), ")");
  top[0]->Reshape({});
  if (top.size() > 1) top[1]->Reshape({static_cast<int>(classes_)});
}

void AccuracyLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float* score = bottom[0]->data();
  const float* label = bottom[1]->data();
  std::vector<int64_t> correct_per_class(static_cast<size_t>(classes_), 0);
  std::vector<int64_t> count_per_class(static_cast<size_t>(classes_), 0);
  int64_t correct = 0, count = 0;
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      const int l = static_cast<int>(label[o * inner_ + i]);
      if (has_ignore_label_ && l == ignore_label_) continue;
      COS_LAYER_CHECK(l >= 0 && l < classes_, ShapeError, "label ", l, " outside [0, ", classes_, ")");
      const float* s = score + o * classes_ * inner_ + i;
      const float true_score = s[l * inner_];
      int64_t at_least_as_high = 0;
      for (int64_t c = 0; c < classes_; ++c) {
        if (c != l && s[c * inner_] >= true_score) ++at_least_as_high;
      }
      ++count;
      ++count_per_class[l];
      if (at_least_as_high < top_k_) {
        ++correct;
        ++correct_per_class[l];
      }
    }
  }
  top[0]->mutable_data()[0] = count == 0 ? 0.0f : static_cast<float>(static_cast<double>(correct) / count);
  if (top.size() > 1) {
    float* per_class = top[1]->mutable_data();
    for (int64_t c = 0; c < classes_; ++c) {
      per_class[c] = count_per_class[c] == 0
                         ? 0.0f
                         : static_cast<float>(static_cast<double>(correct_per_class[c]) / count_per_class[c]);
    }
  }
}

void AccuracyLayer::Backward_cpu(const Tensors&, const std::vector<bool>& propagate_down,
                                 const Tensors&) {
  for (bool wanted : propagate_down) {
    COS_LAYER_CHECK(!wanted, ConfigError, "Accuracy has no gradient; remove propagate_down: true");
  }
}

}  // namespace caffeonspark
