#include "bindings/python_layer.h"

#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/gil_release.h"
#include "core/math.h"
#include "layers/registry.h"

namespace caffeonspark::py_bind {

namespace {

// The Python half: caffeonspark/python_layer.py (imports, instances, error text).
py::object Helpers() { return py::module_::import("caffeonspark.python_layer"); }

[[noreturn]] void ThrowKind(const std::string& kind, const std::string& message) {
#define COS_THROW_NAMED(Name, Base) \
  if (kind == #Name) throw Name(message);
  COS_ERROR_TYPES(COS_THROW_NAMED)
#undef COS_THROW_NAMED
  throw InternalError(message);
}

// Called with the GIL held, inside the catch of `error`. KeyboardInterrupt and SystemExit
// go on as Python exceptions; everything else becomes an engine error.
[[noreturn]] void RethrowAsEngineError(py::error_already_set& error, const std::string& where,
                                       const py::object& layer, const char* method,
                                       const char* fallback_kind) {
  if (!error.matches(PyExc_Exception)) throw;
  std::string kind = fallback_kind, text = error.what();
  try {
    py::tuple described = Helpers().attr("describe_error")(error.value(), error.trace(), layer,
                                                           method, fallback_kind);
    kind = described[0].cast<std::string>();
    text = described[1].cast<std::string>();
  } catch (py::error_already_set&) {
    // describe_error itself failed: keep pybind11's own text of the original error.
  }
  ThrowKind(kind, where + text);
}

bool InterpreterGone() {
  return !Py_IsInitialized() ||
         (InterpreterFinalizing() && PyThread_get_thread_ident() != MainThreadIdent());
}

}  // namespace

Tensor& TensorRef::get() const {
  COS_CHECK(tensor != nullptr && alive && *alive, ConfigError,
            "a Blob given to a Python layer was used after its net was destroyed");
  return *tensor;
}

PythonLayer::PythonLayer(const LayerSpec& spec) : Layer(spec) {
  COS_LAYER_CHECK(spec_.params.has("python_param"), ConfigError,
                  "needs python_param { module: \"...\" layer: \"...\" }");
  const Params& p = spec_.params.child("python_param");
  auto text = [&p](const char* key) { return p.size(key) ? p.str(key) : std::string(); };
  blobs_view_ = std::make_shared<PythonLayerBlobs>();
  blobs_view_->blobs = &blobs_;
  blobs_view_->where = where();
  py::gil_scoped_acquire gil;
  try {
    self_ = Helpers().attr("create_layer")(
        spec_.name, spec_.where, text("module"), text("layer"), text("param_str"),
        static_cast<int>(phase_), text("module_dir"), py::bytes(text("layer_proto")),
        blobs_view_);
  } catch (py::error_already_set& error) {
    // create_layer raises ConfigErrors that already name the layer, module and class.
    RethrowAsEngineError(error, "", py::none(), nullptr, "ConfigError");
  }
}

PythonLayer::~PythonLayer() {
  blobs_view_->blobs = nullptr;
  if (InterpreterGone()) {
    // Python is shutting down (or gone) under a thread other than its main one: taking the
    // GIL would end this thread; leave the objects to the exiting interpreter.
    *alive_ = false;
    self_.release();
    bottom_list_.release();
    top_list_.release();
    return;
  }
  py::gil_scoped_acquire gil;
  *alive_ = false;
  self_ = py::object();
  bottom_list_ = py::object();
  top_list_ = py::object();
}

template <typename Call>
void PythonLayer::CallPython(const char* method, const char* fallback_kind, Call&& call) {
  py::gil_scoped_acquire gil;
  try {
    call();
  } catch (py::error_already_set& error) {
    RethrowAsEngineError(error, where(), self_, method, fallback_kind);
  }
}

void PythonLayer::BindBlobs(const Tensors& bottom, const Tensors& top) {
  if (bottom == bound_bottom_ && top == bound_top_ && bottom_list_) return;
  py::object blob_class = py::module_::import("caffeonspark.engine").attr("Blob");
  auto wrap = [&](const Tensors& tensors) {
    py::list list;
    for (Tensor* t : tensors) list.append(blob_class(TensorRef{t, alive_}));
    return list;
  };
  bottom_list_ = wrap(bottom);
  top_list_ = wrap(top);
  bound_bottom_ = bottom;
  bound_top_ = top;
}

void PythonLayer::LayerSetUp(const Tensors& bottom, const Tensors& top) {
  CallPython("setup", "ConfigError", [&] {
    BindBlobs(bottom, top);
    self_.attr("setup")(bottom_list_, top_list_);
  });
  blobs_view_->frozen = true;
}

void PythonLayer::Reshape(const Tensors& bottom, const Tensors& top) {
  CallPython("reshape", "ShapeError", [&] {
    BindBlobs(bottom, top);
    self_.attr("reshape")(bottom_list_, top_list_);
  });
}

void PythonLayer::Forward_cpu(const Tensors& bottom, const Tensors& top) {
  CallPython("forward", "InternalError", [&] {
    BindBlobs(bottom, top);
    self_.attr("forward")(bottom_list_, top_list_);
  });
}

void PythonLayer::Backward_cpu(const Tensors& top, const std::vector<bool>& propagate_down,
                               const Tensors& bottom) {
  CallPython("backward", "InternalError", [&] {
    BindBlobs(bottom, top);
    py::list down;
    for (bool d : propagate_down) down.append(py::bool_(d));
    self_.attr("backward")(top_list_, down, bottom_list_);
  });
}

void BindPythonLayer(py::module_& m) {
  py::class_<TensorRef>(m, "_TensorRef",
                        "A Python layer's view of one of its net's tensors (wrapped in engine.Blob).")
      .def_property_readonly("shape", [](const TensorRef& r) { return r.get().shape(); })
      .def_property_readonly("count", [](const TensorRef& r) { return r.get().count(); })
      .def("reshape", [](const TensorRef& r, const std::vector<int>& shape) { r.get().Reshape(shape); })
      .def_property_readonly("data", [](const TensorRef& r) { return TensorView(r.get(), false); })
      .def_property_readonly("diff", [](const TensorRef& r) { return TensorView(r.get(), true); });

  py::class_<PythonLayerBlobs, std::shared_ptr<PythonLayerBlobs>>(
      m, "_PythonLayerBlobs", "A Python layer's parameter blobs (caffe/layer.py LayerBlobs).")
      .def("__len__",
           [](const PythonLayerBlobs& b) { return b.blobs ? b.blobs->size() : size_t{0}; })
      .def("tensor",
           [](const PythonLayerBlobs& b, size_t i) {
             COS_CHECK(b.blobs != nullptr, ConfigError, b.where, "the layer no longer exists");
             COS_CHECK(i < b.blobs->size(), ConfigError, b.where, "has ", b.blobs->size(),
                       " parameter blobs, no blob ", i);
             return (*b.blobs)[i];
           })
      .def("add", [](PythonLayerBlobs& b, const std::vector<int>& shape) {
        COS_CHECK(b.blobs != nullptr, ConfigError, b.where, "the layer no longer exists");
        COS_CHECK(!b.frozen, ConfigError, b.where,
                  "parameter blobs can only be added in setup (the net has registered them)");
        auto tensor = std::make_shared<Tensor>(shape);
        fill(tensor->count(), 0.0f, tensor->mutable_data());
        fill(tensor->count(), 0.0f, tensor->mutable_diff());
        b.blobs->push_back(tensor);
        return tensor;
      });

  RegisterLayerType("Python", [](const LayerSpec& spec) -> std::unique_ptr<Layer> {
    return std::make_unique<PythonLayer>(spec);
  });
}

}  // namespace caffeonspark::py_bind
