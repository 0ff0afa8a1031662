// caffeonspark._engine Solver bindings (filled in with cpp/solver/).
#include "bindings/convert.h"

namespace caffeonspark::py_bind {

void BindSolver(py::module_& m) {}

}  // namespace caffeonspark::py_bind
