// caffeonspark._engine core: error translation, Tensor, threads and seeds.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "core/errors.h"
#include "core/math.h"
#include "core/rng.h"
#include "layers/registry.h"

namespace caffeonspark::py_bind {

namespace {

void RaisePython(const char* class_name, const char* message) {
  py::object cls = py::module_::import("caffeonspark.errors").attr(class_name);
  PyErr_SetString(cls.ptr(), message);
}

void TranslateErrors(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const PeerTimeout& e) {
    RaisePython("PeerTimeout", e.what());
  } catch (const CommError& e) {
    RaisePython("CommError", e.what());
  } catch (const ConfigError& e) {
    RaisePython("ConfigError", e.what());
  } catch (const ShapeError& e) {
    RaisePython("ShapeError", e.what());
  } catch (const FormatError& e) {
    RaisePython("FormatError", e.what());
  } catch (const IoError& e) {
    RaisePython("IoError", e.what());
  } catch (const CudaError& e) {
    RaisePython("CudaError", e.what());
  } catch (const InternalError& e) {
    RaisePython("InternalError", e.what());
  }
}

}  // namespace

void BindCore(py::module_& m) {
  py::register_exception_translator(&TranslateErrors);

  py::class_<Tensor, std::shared_ptr<Tensor>>(m, "Tensor")
      .def(py::init<>())
      .def(py::init<const std::vector<int>&>())
      .def_property_readonly("shape", [](const Tensor& t) { return t.shape(); })
      .def_property_readonly("count", [](const Tensor& t) { return t.count(); })
      .def("reshape", &Tensor::Reshape)
      .def_property_readonly("data", [](const Tensor& t) { return TensorView(t, false); })
      .def_property_readonly("diff", [](const Tensor& t) { return TensorView(t, true); })
      .def("share_data", &Tensor::ShareData);

  m.def("set_num_threads", &set_num_threads, "Threads for BLAS and OpenMP loops.");
  m.def("num_threads", &num_threads);
  m.def("set_random_seed", &set_random_seed, "Seeds the engine's RNG (fillers, dropout, crops).");
  m.def("layer_types", &LayerTypes, "Every Caffe type string the engine can build.");
#ifdef COS_WITH_CUDA
  m.attr("has_cuda") = true;
#else
  m.attr("has_cuda") = false;
#endif
}

}  // namespace caffeonspark::py_bind
