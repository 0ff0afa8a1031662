#include "core/math.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

namespace {

int g_threads = 0;  // 0: OpenMP's default (all cores)

// BLAS always runs on the calling thread; the engine's only thread pool is OpenMP's. Two
// pools on the same cores fight: OpenBLAS workers busy-wait for a while after each call and
// starve the next layer's OpenMP loop (LeNet, 2 threads on 2 cores: 117 ms per iteration
// with threaded BLAS against 9 ms with this rule).
void EnsureSerialBlas() {
  static const bool once = [] {
    scipy_openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

bool InParallelRegion() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// Products below this many flops run on one thread (a fork/join costs a few microseconds).
constexpr double kParallelGemmFlops = 2e6;

}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C) {
  EnsureSerialBlas();
  const int lda = trans_a ? M : K;
  const int ldb = trans_b ? K : N;
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  const int threads = InParallelRegion() ? 1 : num_threads();
  // Split the larger of M and N into one block per thread (multiples of 16 columns/rows);
  // each block is an independent serial GEMM on a sub-matrix with the full leading dims.
  const bool split_n = N >= M;
  const int extent = split_n ? N : M;
  const int parts = std::min(threads, (extent + 15) / 16);
  if (parts <= 1 || 2.0 * M * N * K < kParallelGemmFlops) {
    scipy_cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
    return;
  }
  const int block = ((extent + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) {
    const int start = p * block;
    const int len = std::min(block, extent - start);
    if (len <= 0) continue;
    if (split_n) {
      const float* b = B + (trans_b ? static_cast<long>(start) * K : start);
      scipy_cblas_sgemm(CblasRowMajor, ta, tb, M, len, K, alpha, A, lda, b, ldb, beta, C + start, N);
    } else {
      const float* a = A + (trans_a ? start : static_cast<long>(start) * K);
      scipy_cblas_sgemm(CblasRowMajor, ta, tb, len, N, K, alpha, a, lda, B, ldb, beta,
                        C + static_cast<long>(start) * N, N);
    }
  }
}

void gemv(bool trans_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y) {
  EnsureSerialBlas();
  scipy_cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, M, N, alpha, A, N, x, 1,
                    beta, y, 1);
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void axpby(int64_t n, float alpha, const float* x, float beta, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
}

void scale(int64_t n, float alpha, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

void copy(int64_t n, const float* x, float* y) {
  if (x != y && n > 0) std::memcpy(y, x, sizeof(float) * n);
}

void fill(int64_t n, float value, float* x) {
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

double dot(int64_t n, const float* x, const float* y) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * y[i];
  return s;
}

double asum(int64_t n, const float* x) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(x[i]);
  return s;
}

void set_num_threads(int n) {
  g_threads = n;
  EnsureSerialBlas();
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int num_threads() {
  if (g_threads > 0) return g_threads;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace caffeonspark
