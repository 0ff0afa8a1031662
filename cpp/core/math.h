// CPU math used by the layers: BLAS (scipy-openblas32, prefixed symbols so it never clashes
// with NumPy's own OpenBLAS) plus small vectorisable loops. Row-major throughout, as Caffe.
#pragma once

#include <cstdint>

namespace caffeonspark {

// C = alpha * op(A) * op(B) + beta * C, with op(A) M×K, op(B) K×N, C M×N.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C);
// y = alpha * op(A) * x + beta * y, A is M×N.
void gemv(bool trans_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y);
void axpy(int64_t n, float alpha, const float* x, float* y);   // y += alpha x
void axpby(int64_t n, float alpha, const float* x, float beta, float* y);
void scale(int64_t n, float alpha, float* x);                  // x *= alpha
void copy(int64_t n, const float* x, float* y);
void fill(int64_t n, float value, float* x);
double dot(int64_t n, const float* x, const float* y);         // accumulated in double
double asum(int64_t n, const float* x);

// Threads of the engine's parallel loops (Caffe's engine default: all cores). BLAS itself is
// always single-threaded: gemm() spreads large products over these OpenMP threads (and runs
// serially when called inside a parallel region), so only one thread pool ever spins.
void set_num_threads(int n);
int num_threads();

}  // namespace caffeonspark
