#include "core/math.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C) {
  int lda = trans_a ? M : K;
  int ldb = trans_b ? K : N;
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                    N);
}

void gemv(bool trans_a, int M, int N, float alpha, const float* A, const float* x, float beta,
          float* y) {
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

namespace {
int g_threads = 0;
}

void set_num_threads(int n) {
  g_threads = n;
  scipy_openblas_set_num_threads(n);
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

int num_threads() {
  if (g_threads > 0) return g_threads;
  return scipy_openblas_get_num_threads();
}

SerialBlasScope::SerialBlasScope() : previous_(scipy_openblas_get_num_threads()) {
  if (previous_ != 1) scipy_openblas_set_num_threads(1);
}

SerialBlasScope::~SerialBlasScope() {
  if (previous_ != 1) scipy_openblas_set_num_threads(previous_);
}

}  // namespace caffeonspark
