// caffeonspark._engine core: error translation, Tensor, threads and seeds.
// Tests: tests/test_errors.py, tests/test_small_gemm.py.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "core/errors.h"
#include "core/math.h"
#include "core/rng.h"
#include "core/small_gemm.h"
#include "core/transpose.h"
#include "layers/registry.h"

namespace caffeonspark::py_bind {

namespace {

void RaisePython(const char* class_name, const char* message) {
  py::object cls = py::module_::import("caffeonspark.errors").attr(class_name);
  PyErr_SetString(cls.ptr(), message);
}

// Every engine error by its taxonomy name: one catch serves the whole list in errors.h.
void TranslateErrors(std::exception_ptr error) {
  try {
    if (error) std::rethrow_exception(error);
  } catch (const Error& e) {
    RaisePython(e.kind(), e.what());
  }
}

// The taxonomy as (name, base name) pairs, in errors.h's order; base "Error" is
// caffeonspark.errors.CaffeOnSparkError.
std::vector<std::pair<std::string, std::string>> ErrorTypes() {
  std::vector<std::pair<std::string, std::string>> types;
#define COS_LIST_ERROR_TYPE(Name, Base) types.emplace_back(#Name, #Base);
  COS_ERROR_TYPES(COS_LIST_ERROR_TYPE)
#undef COS_LIST_ERROR_TYPE
  return types;
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
  m.def("error_types", &ErrorTypes,
        "The engine's error taxonomy as (name, base name) pairs; base 'Error' is "
        "caffeonspark.errors.CaffeOnSparkError.");
  // Test hook for core/small_gemm.h (tests/test_small_gemm.py): c (M×N float32, C order,
  // updated in place) = [c +] op(a) · b, op(a) = a, or aᵀ read in place when transpose_a.
  m.def(
      "_small_gemm",
      [](const py::array_t<float, py::array::c_style | py::array::forcecast>& a, bool transpose_a,
         const py::array_t<float, py::array::c_style | py::array::forcecast>& b,
         py::array_t<float, py::array::c_style>& c, bool accumulate) {
        COS_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, ShapeError,
                  "_small_gemm takes 2-D arrays");
        const long M = c.shape(0), N = c.shape(1);
        const long L = transpose_a ? a.shape(0) : a.shape(1);
        COS_CHECK((transpose_a ? a.shape(1) : a.shape(0)) == M && b.shape(0) == L && b.shape(1) == N,
                  ShapeError, "_small_gemm: shapes do not chain");
        const long a_row = transpose_a ? 1 : L, a_col = transpose_a ? M : 1;
        small_gemm(static_cast<int>(M), static_cast<int>(N), static_cast<int>(L), a.data(), a_row,
                   a_col, b.data(), N, accumulate, c.mutable_data(), N);
      },
      py::arg("a"), py::arg("transpose_a"), py::arg("b"), py::arg("c"), py::arg("accumulate"));
  // The gathered form: A(m, l) = a[a_rows[m] + a_cols[l]] over a flat float32 array.
  m.def(
      "_small_gemm_gather",
      [](const py::array_t<float, py::array::c_style | py::array::forcecast>& a,
         const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& a_rows,
         const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& a_cols,
         const py::array_t<float, py::array::c_style | py::array::forcecast>& b,
         py::array_t<float, py::array::c_style>& c, bool accumulate) {
        COS_CHECK(b.ndim() == 2 && c.ndim() == 2, ShapeError, "_small_gemm_gather: b and c are 2-D");
        const long M = c.shape(0), N = c.shape(1), L = b.shape(0);
        COS_CHECK(a_rows.size() == M && a_cols.size() == L && b.shape(1) == N, ShapeError,
                  "_small_gemm_gather: shapes do not chain");
        for (long m = 0; m < M; ++m) {
          for (long l = 0; l < L; ++l) {
            const long at = static_cast<long>(a_rows.data()[m]) + a_cols.data()[l];
            COS_CHECK(at >= 0 && at < a.size(), ShapeError, "_small_gemm_gather: offset outside a");
          }
        }
        small_gemm_gather(static_cast<int>(M), static_cast<int>(N), static_cast<int>(L), a.data(),
                          a_rows.data(), a_cols.data(), b.data(), N, accumulate, c.mutable_data(), N);
      },
      py::arg("a"), py::arg("a_rows"), py::arg("a_cols"), py::arg("b"), py::arg("c"),
      py::arg("accumulate"));
  // Test hook for core/transpose.h: (src's transpose as a new array, the row sums of src).
  m.def("_transpose", [](const py::array_t<float, py::array::c_style | py::array::forcecast>& src) {
    COS_CHECK(src.ndim() == 2, ShapeError, "_transpose takes a 2-D array");
    const long rows = src.shape(0), cols = src.shape(1);
    py::array_t<float> dst({cols, rows});
    py::array_t<double> row_sums(rows);
    std::fill(row_sums.mutable_data(), row_sums.mutable_data() + rows, 0.0);
    transpose(src.data(), cols, static_cast<int>(rows), static_cast<int>(cols), dst.mutable_data(),
              rows, nullptr, row_sums.mutable_data());
    return py::make_tuple(dst, row_sums);
  });
#ifdef COS_WITH_CUDA
  m.attr("has_cuda") = true;
#else
  m.attr("has_cuda") = false;
#endif
}

}  // namespace caffeonspark::py_bind
