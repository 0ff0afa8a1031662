// More element-wise layers (one bottom, one top of the same shape, in-place allowed):
//   Power  power_param power p (1), scale a (1), shift b (0): y = (b + a x)^p,
//          dy/dx = p a (b + a x)^(p-1) (0 when p a == 0)
//   Exp    exp_param base (-1 = e), scale a (1), shift b (0): y = base^(b + a x),
//          dy/dx = ln(base) a y; base must be > 0 or -1
//   Log    log_param base (-1 = e), scale a (1), shift b (0): y = log_base(b + a x),
//          dy/dx = a / ((b + a x) ln(base)); base must be > 0 (not 1) or -1
//   PReLU  prelu_param channel_shared (false), filler (constant 0.25 when none is written):
//          y = max(x,0) + a_c min(x,0), slopes a of shape (C) = shape(1), or (1) if shared;
//          d/da_c += sum dy x [x<=0] (accumulated), dx = dy (x>0 ? 1 : a_c). Needs >= 2 axes.
// Tests: tests/layers/test_neuron_extra.py.
#pragma once

#include "layers/neuron.h"

namespace caffeonspark {

class PowerLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Power"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float power_ = 1, scale_ = 1, shift_ = 0;
};

class ExpLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Exp"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float inner_scale_ = 1;  // ln(base) * scale
  float outer_scale_ = 1;  // base^shift
};

class LogLayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "Log"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  float scale_ = 1, shift_ = 0;
  float base_scale_ = 1;  // 1 / ln(base)
};

class PReLULayer : public NeuronLayer {
 public:
  using NeuronLayer::NeuronLayer;
  const char* type() const override { return "PReLU"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  bool channel_shared_ = false;
  int channels_ = 0;
  int64_t inner_ = 0;  // count from axis 2 on
};

}  // namespace caffeonspark
