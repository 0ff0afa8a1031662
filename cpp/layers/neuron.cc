#include "layers/neuron.h"

#include <algorithm>

namespace caffeonspark {

void ReLULayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  const float slope = spec_.params.child("relu_param").real("negative_slope");
  const float* x = bottom[0]->data();
  float* y = top[0]->mutable_data();
  const int64_t n = bottom[0]->count();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = std::max(x[i], 0.0f) + slope * std::min(x[i], 0.0f);
}

void ReLULayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                             const Tensors& bottom) {
  if (!propagate_down[0]) return;
  const float slope = spec_.params.child("relu_param").real("negative_slope");
  const float* x = bottom[0]->data();  // equals top data in place; the sign is the same
  const float* dy = top[0]->diff();
  float* dx = bottom[0]->mutable_diff();
  const int64_t n = bottom[0]->count();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (x[i] > 0 ? 1.0f : slope);
}

}  // namespace caffeonspark
