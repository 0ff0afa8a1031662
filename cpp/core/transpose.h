// transpose: dst[c·dst_ld + r] = src[r·src_ld + c] (+ add[c] when add is given) for r < rows,
// c < cols (float32, row-major, no overlap); the addition is the one rounding a separate pass
// would do (a convolution's bias). When row_sums is given, row_sums[r] += Σ_c src[r, c] too
// (float sums over each block of 16 columns, accumulated in double: a bias gradient). 16×16 blocks go through vector registers (four rounds of two-input shuffles, one
// per bit of the index); ragged edges element by element. The convolution's gather products
// work channel-minor and convert through it (cpp/layers/convolution_products.cc).
// Tests: tests/test_small_gemm.py (via _engine._transpose, ragged shapes against NumPy).
#pragma once

namespace caffeonspark {

void transpose(const float* src, long src_ld, int rows, int cols, float* dst, long dst_ld,
               const float* add = nullptr, double* row_sums = nullptr);

}  // namespace caffeonspark
