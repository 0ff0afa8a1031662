// Embed (embed_param: num_output N, input_dim K, bias_term (true), weight_filler, bias_filler):
// a lookup table. Each bottom value is an integer index k in [0, K) (stored as a float);
// top = bottom.shape + (N), top[m, :] = W[k_m, :] (+ b). Weight (K, N), bias (N).
// Backward: dW[k_m, :] += dy[m, :], db += Σ_m dy[m, :]; the indices get no gradient (asking
// for one is a ConfigError, as in Caffe). A value that is not an integer in [0, K) is a
// ShapeError naming the layer. Semantics: docs/CAFFE.md §2.7. Tests: tests/layers/test_embed.py.
#pragma once

#include <vector>

#include "layers/layer.h"

namespace caffeonspark {

class EmbedLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Embed"; }
  int ExactNumBottomBlobs() const override { return 1; }
  int ExactNumTopBlobs() const override { return 1; }
  bool AllowForceBackward(int) const override { return false; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Checks every index before any parallel loop reads them (a throw may not cross one).
  void CheckIndices(const Tensor& indices) const;

  int K_ = 0, N_ = 0;
  int64_t M_ = 0;
  bool bias_term_ = true;
  Tensor ones_;  // (M): ones for the bias gradient
};

}  // namespace caffeonspark
