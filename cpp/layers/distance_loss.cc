#include "layers/distance_loss.h"

#include <algorithm>
#include <cmath>

#include "core/math.h"

namespace caffeonspark {

void EuclideanLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(bottom[0]->count(1) == bottom[1]->count(1) &&
                      bottom[0]->shape(0) == bottom[1]->shape(0),
                  ShapeError, "inputs must have the same shape, got ", bottom[0]->shape_string(),
                  " and ", bottom[1]->shape_string());
  difference_.ReshapeLike(*bottom[0]);
  top[0]->Reshape({});
}

void EuclideanLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const int64_t n = bottom[0]->count();
  const float* a = bottom[0]->data();
  const float* b = bottom[1]->data();
  float* d = difference_.mutable_data();
  for (int64_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
  top[0]->mutable_data()[0] = static_cast<float>(dot(n, d, d) / bottom[0]->shape(0) / 2.0);
}

void EuclideanLossLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                      const Tensors& bottom) {
  for (int i = 0; i < 2; ++i) {
    if (!propagate_down[i]) continue;
    const float sign = i == 0 ? 1.0f : -1.0f;
    const float alpha = sign * top[0]->diff()[0] / bottom[i]->shape(0);
    axpby(bottom[i]->count(), alpha, difference_.data(), 0.0f, bottom[i]->mutable_diff());
  }
}

void ContrastiveLossLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  COS_LAYER_CHECK(bottom[0]->shape() == bottom[1]->shape(), ShapeError,
                  "the two feature inputs must have the same shape, got ",
                  bottom[0]->shape_string(), " and ", bottom[1]->shape_string());
  COS_LAYER_CHECK(bottom[2]->count() == bottom[0]->shape(0), ShapeError,
                  "the similarity input needs one value per pair (", bottom[0]->shape(0),
                  "), got ", bottom[2]->shape_string());
  difference_.ReshapeLike(*bottom[0]);
  distance_sq_.assign(bottom[0]->shape(0), 0.0);
  top[0]->Reshape({});
}

void ContrastiveLossLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const Params& p = spec_.params.child("contrastive_loss_param");
  const double margin = p.number("margin");
  const bool legacy = p.flag("legacy_version");
  const int64_t pairs = bottom[0]->shape(0), dim = bottom[0]->count(1);
  const float* a = bottom[0]->data();
  const float* b = bottom[1]->data();
  const float* similar = bottom[2]->data();
  float* d = difference_.mutable_data();
  double loss = 0;
  for (int64_t i = 0; i < pairs; ++i) {
    for (int64_t j = 0; j < dim; ++j) d[i * dim + j] = a[i * dim + j] - b[i * dim + j];
    distance_sq_[i] = dot(dim, d + i * dim, d + i * dim);
    if (static_cast<int>(similar[i])) {
      loss += distance_sq_[i];
    } else if (legacy) {
      loss += std::max(margin - distance_sq_[i], 0.0);
    } else {
      double gap = std::max(margin - std::sqrt(distance_sq_[i]), 0.0);
      loss += gap * gap;
    }
  }
  top[0]->mutable_data()[0] = static_cast<float>(loss / pairs / 2.0);
}

void ContrastiveLossLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                                        const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[2], ConfigError, "cannot backpropagate to the similarity input");
  const Params& p = spec_.params.child("contrastive_loss_param");
  const double margin = p.number("margin");
  const bool legacy = p.flag("legacy_version");
  const int64_t pairs = bottom[0]->shape(0), dim = bottom[0]->count(1);
  const float* similar = bottom[2]->data();
  const float* d = difference_.data();
  for (int input = 0; input < 2; ++input) {
    if (!propagate_down[input]) continue;
    const double base = (input == 0 ? 1.0 : -1.0) * top[0]->diff()[0] / pairs;
    float* dx = bottom[input]->mutable_diff();
    for (int64_t i = 0; i < pairs; ++i) {
      double coeff = 0;
      if (static_cast<int>(similar[i])) {
        coeff = base;
      } else if (legacy) {
        coeff = margin - distance_sq_[i] > 0 ? -base : 0.0;
      } else {
        double dist = std::sqrt(distance_sq_[i]);
        double gap = margin - dist;
        // A small epsilon keeps coincident pairs finite, as Caffe does.
        coeff = gap > 0 ? -base * gap / (dist + 1e-4) : 0.0;
      }
      for (int64_t j = 0; j < dim; ++j) dx[i * dim + j] = static_cast<float>(coeff * d[i * dim + j]);
    }
  }
}

}  // namespace caffeonspark
