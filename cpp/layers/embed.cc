#include "layers/embed.h"

#include <algorithm>
#include <memory>

#include "core/checked_size.h"
#include "core/filler.h"
#include "core/math.h"
#include "core/parallel.h"

namespace caffeonspark {

namespace {
// Columns of the weight gradient one task of the backward loop owns (no two tasks write the
// same element, so repeated indices need no atomics).
constexpr int64_t kColumnBlock = 64;
}  // namespace

void EmbedLayer::LayerSetUp(const Tensors&, const Tensors&) {
  const Params& p = spec_.params.child("embed_param");
  N_ = p.integer("num_output");
  K_ = p.integer("input_dim");
  COS_LAYER_CHECK(N_ > 0, ConfigError, "embed_param.num_output must be positive, got ", N_);
  COS_LAYER_CHECK(K_ > 0, ConfigError, "embed_param.input_dim must be positive, got ", K_);
  CheckedMul(K_, N_, where(), "weight count (input_dim · num_output)");
  bias_term_ = p.flag("bias_term");
  auto weight = std::make_shared<Tensor>(std::vector<int>{K_, N_});
  Fill(p.child("weight_filler"), weight.get(), where() + "weight_filler: ");
  blobs_ = {weight};
  if (bias_term_) {
    auto bias = std::make_shared<Tensor>(std::vector<int>{N_});
    Fill(p.child("bias_filler"), bias.get(), where() + "bias_filler: ");
    blobs_.push_back(bias);
  }
}

void EmbedLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  M_ = bottom[0]->count();
  std::vector<int> shape = bottom[0]->shape();
  shape.push_back(N_);
  CheckedCount(shape, where(), "top count");
  top[0]->Reshape(shape);
  if (bias_term_ && ones_.count() != M_) {
    ones_.Reshape({static_cast<int>(M_)});
    fill(M_, 1.0f, ones_.mutable_data());
  }
}

void EmbedLayer::CheckIndices(const Tensor& indices) const {
  const float* k = indices.data();
  for (int64_t m = 0; m < M_; ++m) {
    const float v = k[m];
    COS_LAYER_CHECK(v >= 0 && v < K_ && v == static_cast<float>(static_cast<int>(v)), ShapeError,
                    "index ", v, " at position ", m, " is not an integer in [0, input_dim = ", K_, ")");
  }
}

void EmbedLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  CheckIndices(*bottom[0]);
  const float* k = bottom[0]->data();
  const float* w = blobs_[0]->data();
  const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
  float* y = top[0]->mutable_data();
  const int64_t N = N_;
  ParallelFor(M_, M_ * N, [&](int64_t m) {
    const float* row = w + static_cast<int64_t>(k[m]) * N;
    float* out = y + m * N;
    if (b) {
      for (int64_t j = 0; j < N; ++j) out[j] = row[j] + b[j];
    } else {
      for (int64_t j = 0; j < N; ++j) out[j] = row[j];
    }
  });
}

void EmbedLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                              const Tensors& bottom) {
  COS_LAYER_CHECK(!propagate_down[0], ConfigError,
                  "cannot backpropagate to the index input (Embed's bottom holds indices)");
  const float* dy = top[0]->diff();
  if (param_propagate_down(0)) {
    const float* k = bottom[0]->data();
    float* dw = blobs_[0]->mutable_diff();
    const int64_t N = N_, M = M_;
    const int64_t blocks = (N + kColumnBlock - 1) / kColumnBlock;
    ParallelFor(blocks, M * N, [&](int64_t block) {
      const int64_t begin = block * kColumnBlock;
      const int64_t end = std::min(N, begin + kColumnBlock);
      for (int64_t m = 0; m < M; ++m) {
        float* row = dw + static_cast<int64_t>(k[m]) * N;
        const float* g = dy + m * N;
        for (int64_t j = begin; j < end; ++j) row[j] += g[j];
      }
    });
  }
  if (bias_term_ && param_propagate_down(1)) {
    gemv(true, static_cast<int>(M_), N_, 1.0f, dy, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
  }
}

}  // namespace caffeonspark
