// Conversions between Python objects and engine structs, shared by the bind_* files.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "core/params.h"
#include "core/tensor.h"
#include "layers/layer.h"

namespace caffeonspark::py_bind {

namespace py = pybind11;

// A nested dict of field -> value | list | dict (from netspec.fill_defaults) into Params.
Params ToParams(const py::dict& dict, const std::string& context);
// One layer spec dict (engine.py layer_spec) into a LayerSpec.
LayerSpec ToLayerSpec(const py::dict& dict);
// A NumPy view of a tensor's data or diff that keeps the buffer alive.
py::array TensorView(const Tensor& tensor, bool diff);

}  // namespace caffeonspark::py_bind
