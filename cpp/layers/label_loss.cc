// MultinomialLogisticLoss, HingeLoss and InfogainLoss (rules in label_loss.h).
#include "layers/label_loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/math.h"
#include "core/parallel.h"
#include "layers/loss_normalization.h"

namespace caffeonspark {

namespace {

// Caffe's kLOG_THRESHOLD: probabilities are clamped here before the log.
constexpr float kLogThreshold = 1e-20f;

}  // namespace

// ---- shared label handling ---------------------------------------------------------------

void LabelLossBase::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  const Tensor& labels = *bottom[1];
  COS_LAYER_CHECK(x.num_axes() >= 1 && labels.num_axes() >= 1 && x.shape(0) == labels.shape(0),
                  ShapeError, "the data ", x.shape_string(), " and the labels ",
                  labels.shape_string(), " must have the same first dimension");
  COS_LAYER_CHECK(labels.count() == labels.shape(0), ShapeError,
                  "labels must hold one value per item, (N) or (N, 1, 1, 1), got ",
                  labels.shape_string());
  num_ = x.shape(0);
  dim_ = num_ > 0 ? x.count() / num_ : 0;
  labels_.resize(num_);
  top[0]->Reshape({});
}

void LabelLossBase::ReadLabels(const Tensor& labels) {
  const float* l = labels.data();
  for (int64_t n = 0; n < num_; ++n) {
    const int label = static_cast<int>(l[n]);
    COS_LAYER_CHECK(label >= 0 && label < dim_, ShapeError, "label ", label, " of item ", n,
                    " outside [0, ", dim_, ")");
    labels_[n] = label;
  }
}

// ---- MultinomialLogisticLoss ---------------------------------------------------------------

void MultinomialLogisticLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  ReadLabels(*bottom[1]);
  const float* p = bottom[0]->data();
  double loss = 0;
  for (int64_t n = 0; n < num_; ++n) {
    loss -= std::log(std::max(p[n * dim_ + labels_[n]], kLogThreshold));
  }
  top[0]->mutable_data()[0] = static_cast<float>(loss / std::max<int64_t>(num_, 1));
}

void MultinomialLogisticLossLayer::Backward_cpu(const Tensors& top,
                                                const std::vector<bool>& propagate_down,
                                                const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError, "cannot backpropagate to the label input");
  if (!propagate_down[0]) return;
  ReadLabels(*bottom[1]);
  const float* p = bottom[0]->data();
  float* dp = bottom[0]->mutable_diff();
  fill(bottom[0]->count(), 0.0f, dp);
  const double scale = -static_cast<double>(top[0]->diff()[0]) / std::max<int64_t>(num_, 1);
  for (int64_t n = 0; n < num_; ++n) {
    const int64_t at = n * dim_ + labels_[n];
    dp[at] = static_cast<float>(scale / std::max(p[at], kLogThreshold));
  }
}

// ---- HingeLoss ---------------------------------------------------------------------------

void HingeLossLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const std::string norm = spec_.params.child("hinge_loss_param").str("norm");
  COS_LAYER_CHECK(norm == "L1" || norm == "L2", ConfigError, "unknown hinge_loss_param.norm '",
                  norm, "'");
  l2_ = norm == "L2";
}

void HingeLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  LabelLossBase::Reshape(bottom, top);
  margin_.resize(bottom[0]->count());
}

void HingeLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  ReadLabels(*bottom[1]);
  const float* x = bottom[0]->data();
  const int64_t dim = dim_;
  ParallelFor(num_, num_ * dim_, [&](int64_t n) {
    for (int64_t k = 0; k < dim; ++k) {
      const float t = k == labels_[n] ? 1.0f : -1.0f;
      margin_[n * dim + k] = std::max(0.0f, 1.0f - t * x[n * dim + k]);
    }
  });
  const int64_t count = bottom[0]->count();
  const double sum = l2_ ? dot(count, margin_.data(), margin_.data()) : asum(count, margin_.data());
  top[0]->mutable_data()[0] = static_cast<float>(sum / std::max<int64_t>(num_, 1));
}

void HingeLossLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                  const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError, "cannot backpropagate to the label input");
  if (!propagate_down[0]) return;
  ReadLabels(*bottom[1]);
  float* dx = bottom[0]->mutable_diff();
  const float scale = top[0]->diff()[0] / static_cast<float>(std::max<int64_t>(num_, 1));
  const int64_t dim = dim_;
  const bool l2 = l2_;
  ParallelFor(num_, num_ * dim_, [&](int64_t n) {
    for (int64_t k = 0; k < dim; ++k) {
      const float t = k == labels_[n] ? 1.0f : -1.0f;
      const float d = margin_[n * dim + k];
      const float slope = l2 ? 2.0f * d : static_cast<float>((d > 0) - (d < 0));
      dx[n * dim + k] = -t * slope * scale;
    }
  });
}

// ---- InfogainLoss --------------------------------------------------------------------------

void InfogainLossLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(top.size() == 1 || spec_.loss_weights.size() == 2, ConfigError,
                  "with a second (probability) top, give two loss_weight values (e.g. 1 and 0)");
  const Params& loss = spec_.params.child("loss_param");
  has_ignore_label_ = loss.size("ignore_label") > 0;
  if (has_ignore_label_) ignore_label_ = loss.integer("ignore_label");
  COS_LAYER_CHECK(loss.size("normalize") == 0, ConfigError,
                  "loss_param.normalize is deprecated and refused by InfogainLoss; use "
                  "normalization");
  normalization_ = loss.str("normalization");
  LossNormalizer(normalization_, 1, 1, 1, where());  // rejects an unknown mode at set-up
  const Params& p = spec_.params.child("infogain_loss_param");
  axis_ = p.integer("axis");
  LayerSpec inner = spec_;
  inner.type = "Softmax";
  inner.loss_weights.clear();
  auto softmax_param = std::make_shared<Params>();
  softmax_param->add("axis", static_cast<double>(axis_));
  inner.params = Params();
  inner.params.add("softmax_param", softmax_param);
  softmax_ = std::make_unique<SoftmaxLayer>(inner);
  softmax_->SetUp({bottom[0]}, {&prob_});
  infogain_.clear();
  if (bottom.size() < 3) {
    const std::string source = p.size("source") ? p.str("source") : "";
    COS_LAYER_CHECK(!source.empty(), ConfigError,
                    "give the infogain matrix as infogain_loss_param.source or a third bottom");
    COS_LAYER_CHECK(p.size("source_data"), ConfigError, "infogain matrix '", source,
                    "' was not loaded (build nets through caffeonspark.engine.Net, which reads "
                    "it)");
    const std::string& bytes = p.child("source_data").str("data");
    infogain_.resize(bytes.size() / sizeof(float));
    std::memcpy(infogain_.data(), bytes.data(), infogain_.size() * sizeof(float));
  }
}

void InfogainLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  const Tensor& x = *bottom[0];
  const Tensor& labels = *bottom[1];
  COS_LAYER_CHECK(x.num_axes() >= 1 && labels.num_axes() >= 1 && x.shape(0) == labels.shape(0),
                  ShapeError, "the scores ", x.shape_string(), " and the labels ",
                  labels.shape_string(), " must have the same first dimension");
  softmax_->Reshape({bottom[0]}, {&prob_});
  const int axis = x.CanonicalAxis(axis_);
  outer_ = x.count(0, axis);
  inner_ = x.count(axis + 1);
  classes_ = x.shape(axis);
  COS_LAYER_CHECK(outer_ * inner_ == labels.count(), ShapeError, "label count ", labels.count(),
                  " must equal outer*inner = ", outer_ * inner_, " of the scores ",
                  x.shape_string(), " (classes on axis ", axis, ")");
  const int64_t h_count = bottom.size() > 2 ? bottom[2]->count()
                                            : static_cast<int64_t>(infogain_.size());
  COS_LAYER_CHECK(h_count == classes_ * classes_, ShapeError, "the infogain matrix holds ",
                  h_count, " values; ", classes_, " classes need ", classes_ * classes_);
  row_sums_.resize(classes_);
  labels_.resize(outer_ * inner_);
  top[0]->Reshape({});
  if (top.size() > 1) top[1]->ReshapeLike(x);
}

const float* InfogainLossLayer::Matrix(const Tensors& bottom) const {
  return bottom.size() > 2 ? bottom[2]->data() : infogain_.data();
}

int64_t InfogainLossLayer::ReadLabels(const Tensor& labels) {
  const float* l = labels.data();
  int64_t valid = 0;
  for (int64_t i = 0; i < outer_ * inner_; ++i) {
    const int label = static_cast<int>(l[i]);
    labels_[i] = label;
    if (has_ignore_label_ && label == ignore_label_) continue;
    COS_LAYER_CHECK(label >= 0 && label < classes_, ShapeError, "label ", label, " at position ",
                    i, " outside [0, ", classes_, ")");
    ++valid;
  }
  return valid;
}

void InfogainLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  softmax_->Forward({bottom[0]}, {&prob_});
  const int64_t valid = ReadLabels(*bottom[1]);
  const float* p = prob_.data();
  const float* h = Matrix(bottom);
  double loss = 0;
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      const int label = labels_[o * inner_ + i];
      if (has_ignore_label_ && label == ignore_label_) continue;
      for (int64_t k = 0; k < classes_; ++k) {
        const float pk = p[(o * classes_ + k) * inner_ + i];
        loss -= static_cast<double>(h[label * classes_ + k]) * std::log(std::max(pk, kLogThreshold));
      }
    }
  }
  top[0]->mutable_data()[0] =
      static_cast<float>(loss / LossNormalizer(normalization_, outer_, inner_, valid, where()));
  if (top.size() > 1) copy(prob_.count(), p, top[1]->mutable_data());
}

void InfogainLossLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                     const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[1], ConfigError, "cannot backpropagate to the label input");
  COS_LAYER_CHECK(propagate_down.size() < 3 || !propagate_down[2], ConfigError,
                  "cannot backpropagate to the infogain matrix input");
  if (!propagate_down[0]) return;
  const int64_t valid = ReadLabels(*bottom[1]);
  const float* p = prob_.data();
  const float* h = Matrix(bottom);
  for (int64_t r = 0; r < classes_; ++r) {
    double sum = 0;
    for (int64_t k = 0; k < classes_; ++k) sum += h[r * classes_ + k];
    row_sums_[r] = sum;
  }
  const double scale =
      top[0]->diff()[0] / LossNormalizer(normalization_, outer_, inner_, valid, where());
  float* dx = bottom[0]->mutable_diff();
  for (int64_t o = 0; o < outer_; ++o) {
    for (int64_t i = 0; i < inner_; ++i) {
      const int label = labels_[o * inner_ + i];
      const bool ignored = has_ignore_label_ && label == ignore_label_;
      for (int64_t k = 0; k < classes_; ++k) {
        const int64_t at = (o * classes_ + k) * inner_ + i;
        dx[at] = ignored ? 0.0f
                         : static_cast<float>((p[at] * row_sums_[label] - h[label * classes_ + k]) *
                                              scale);
      }
    }
  }
}

}  // namespace caffeonspark
