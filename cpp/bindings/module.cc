// The extension module caffeonspark._engine: one binding file per subsystem.
#include <pybind11/pybind11.h>

#include "bindings/gil_release.h"

namespace caffeonspark::py_bind {
void BindComm(pybind11::module_& m);
void BindCore(pybind11::module_& m);
void BindData(pybind11::module_& m);
void BindNet(pybind11::module_& m);
void BindOptions(pybind11::module_& m);
void BindPythonLayer(pybind11::module_& m);
void BindSolver(pybind11::module_& m);
}  // namespace caffeonspark::py_bind

PYBIND11_MODULE(_engine, m) {
  m.doc() = "caffeonspark's native engine: tensors, layers, nets and solvers (float32, C++17)";
  caffeonspark::py_bind::MainThreadIdent() = pybind11::module_::import("threading")
                                                 .attr("main_thread")()
                                                 .attr("ident")
                                                 .cast<unsigned long>();
  caffeonspark::py_bind::BindCore(m);
  caffeonspark::py_bind::BindData(m);
  caffeonspark::py_bind::BindNet(m);
  caffeonspark::py_bind::BindPythonLayer(m);  // registers the "Python" layer type
  caffeonspark::py_bind::BindSolver(m);
  caffeonspark::py_bind::BindOptions(m);  // before BindComm: its defaults are these objects
  caffeonspark::py_bind::BindComm(m);
}
