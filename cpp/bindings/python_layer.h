// PythonLayer: Caffe's "Python" layer type (python_param { module layer param_str }), whose
// setup / reshape / forward / backward are methods of a user's Python class. The engine
// core knows nothing of Python: the module's initialisation registers this type with the
// layer registry (RegisterLayerType). The net runs without the GIL; each call into user
// code takes it and gives it back. python/caffeonspark/python_layer.py imports the module
// (sys.path, then the prototxt's folder) and builds the instance; the user's methods see
// the bottoms and tops as caffeonspark.engine.Blob objects whose .data / .diff are NumPy
// views of the engine's tensors, and self.blobs, the parameter blobs the layer may add in
// setup (the net then trains them like any layer's). A Python exception becomes an engine
// error naming the layer, with the Python traceback in its text: the same kind for
// caffeonspark.errors classes, otherwise ConfigError in setup, ShapeError in reshape and
// InternalError in forward / backward. KeyboardInterrupt and SystemExit pass through as
// they are. Its tops count as losses only where loss_weight says so (docs/CAFFE.md §1).
// Tests: tests/layers/test_python_layer.py.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "layers/layer.h"

namespace caffeonspark::py_bind {

namespace py = pybind11;

// A non-owning handle on one of the net's tensors: what a Python layer's Blob wraps. The net
// owns the tensor; once the layer is destroyed the handle refuses to be used.
struct TensorRef {
  Tensor* tensor = nullptr;
  std::shared_ptr<const bool> alive;
  Tensor& get() const;
};

// A Python layer's parameter blobs as its `self.blobs` sees them (caffe/layer.py LayerBlobs).
struct PythonLayerBlobs {
  std::vector<std::shared_ptr<Tensor>>* blobs = nullptr;  // the layer's; null once it is gone
  bool frozen = false;  // after setup the net has registered the parameters: no more adds
  std::string where;
};

class PythonLayer : public Layer {
 public:
  explicit PythonLayer(const LayerSpec& spec);
  ~PythonLayer() override;

  const char* type() const override { return "Python"; }
  void LayerSetUp(const Tensors& bottom, const Tensors& top) override;
  void Reshape(const Tensors& bottom, const Tensors& top) override;

 protected:
  void Forward_cpu(const Tensors& bottom, const Tensors& top) override;
  void Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                    const Tensors& bottom) override;

 private:
  // Runs `call` holding the GIL; a Python exception becomes an engine error of
  // `fallback_kind` (see the header comment) naming the layer and `method`.
  template <typename Call>
  void CallPython(const char* method, const char* fallback_kind, Call&& call);
  // (Re)builds the Blob lists handed to Python when the net's tensor vectors change.
  void BindBlobs(const Tensors& bottom, const Tensors& top);

  py::object self_;
  py::object bottom_list_, top_list_;
  Tensors bound_bottom_, bound_top_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<PythonLayerBlobs> blobs_view_;
};

// Binds TensorRef and PythonLayerBlobs and registers the "Python" layer type.
void BindPythonLayer(py::module_& m);

}  // namespace caffeonspark::py_bind
