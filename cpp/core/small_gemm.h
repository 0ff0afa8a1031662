// small_gemm: a register-blocked matrix product for the per-image products of a convolution
// (core/math.h's gemm() stays the general BLAS entry point).
//
//   C[m, n] = (accumulate ? C[m, n] : 0) + Σ_{l = 0 .. L-1} A(m, l) · B[l, n]
//   for m < M, n < N; A(m, l) = a[m·a_row + l·a_col] with a_row == 1 or a_col == 1 (so A may
//   be read as stored or transposed, no packing); B and C row-major with leading dims ldb, ldc.
//
// Contract: every C element is one running sum over l in ascending order, whatever the
// blocking, so a given shape always gives the same bits, whatever the thread count. Operands
// are read in place: the kernel keeps a tile of C (up to 16 rows × 64 columns on AVX-512) in
// vector registers, broadcasts A and loads rows of B. Reads stay inside the M×L, L×N and M×N
// regions (a ragged last column block goes through a zero-padded copy). Called outside an
// OpenMP parallel region, a large product splits its rows over the engine's threads
// (core/math.h num_threads); inside one it stays on the calling thread.
// Cost: 2·M·N·L flops at 130-165 GFLOP/s per AVX-512 core for the conv shapes (OpenBLAS 0.3.x
// SkylakeX kernels: 75-115 on the same shapes; tools/bench_vision.py times the layers).
// Tests: tests/test_small_gemm.py (ragged shapes against NumPy via _engine._small_gemm and
// _small_gemm_gather) and tests/layers/test_convolution.py (every path through the layer).
#pragma once

namespace caffeonspark {

void small_gemm(int M, int N, int L, const float* a, long a_row, long a_col, const float* b,
                long ldb, bool accumulate, float* c, long ldc);

// The same product with A gathered: A(m, l) = a[a_rows[m] + a_cols[l]]. With a a zero-padded
// image, a_rows the output positions' offsets and a_cols the kernel taps' offsets (or the
// other way round), A is the im2col matrix (or its transpose) read without building it.
void small_gemm_gather(int M, int N, int L, const float* a, const int* a_rows, const int* a_cols,
                       const float* b, long ldb, bool accumulate, float* c, long ldc);

}  // namespace caffeonspark
