// Sums of float rows accumulated in double, in kSumLanes independent lanes: element i of a
// row goes to lane i % kSumLanes, and Total() adds the lanes in a fixed order. One running
// double sum is a chain of dependent adds (one add's latency per element, several times
// slower than memory); the lanes are independent chains the compiler keeps in vector
// registers. The order of the additions is fixed by the code, not by the thread count or
// the vector width, so a reduction built from these is bitwise the same on any number of
// threads. Used by the per-channel reductions of BatchNorm and Scale/Bias.
// Tests: tests/layers/test_batch_norm.py, tests/layers/test_parallel_loops.py.
#pragma once

#include <cstdint>
#include <cstring>

namespace caffeonspark {

inline constexpr int kSumLanes = 8;

// GCC/Clang vector extensions: one AVX-512 register, two AVX ones, or four SSE ones, lane
// for lane the same arithmetic (no reassociation: each lane is its own chain).
typedef float LaneFloats __attribute__((vector_size(kSumLanes * sizeof(float))));
typedef double LaneDoubles __attribute__((vector_size(kSumLanes * sizeof(double))));

// Elements [i, i + kSumLanes) of x in double; LoadTail reads the n < kSumLanes left over and
// gives 0 in the other lanes (adding 0 leaves a lane as it was).
inline LaneDoubles LoadLanes(const float* x) {
  LaneFloats f;
  std::memcpy(&f, x, sizeof f);
  return __builtin_convertvector(f, LaneDoubles);
}

inline LaneDoubles LoadTail(const float* x, int64_t n) {
  LaneFloats f = {};
  for (int64_t j = 0; j < n; ++j) f[j] = x[j];
  return __builtin_convertvector(f, LaneDoubles);
}

struct LaneSum {
  LaneDoubles lanes = {};

  double Total() const {
    double pairs[kSumLanes / 2];
    for (int j = 0; j < kSumLanes / 2; ++j) pairs[j] = lanes[j] + lanes[j + kSumLanes / 2];
    return (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]);
  }
};

// s += x[i] over one row.
inline void AddRow(const float* x, int64_t n, LaneSum& s) {
  LaneDoubles acc = s.lanes;
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes) acc += LoadLanes(x + i);
  if (i < n) acc += LoadTail(x + i, n - i);
  s.lanes = acc;
}

// sq += (x[i] - center)^2 over one row.
inline void AddSquaredDeviations(const float* x, int64_t n, double center, LaneSum& sq) {
  LaneDoubles acc = sq.lanes;
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes) {
    const LaneDoubles d = LoadLanes(x + i) - center;
    acc += d * d;
  }
  if (i < n) {
    // The padding lanes give (0 - center)^2: mask them out.
    const LaneDoubles d = LoadTail(x + i, n - i) - center;
    LaneDoubles sq_tail = d * d;
    for (int64_t j = n - i; j < kSumLanes; ++j) sq_tail[j] = 0.0;
    acc += sq_tail;
  }
  sq.lanes = acc;
}

// s += a[i] and p += a[i] * b[i] over one row, in one pass.
inline void AddRowAndProduct(const float* a, const float* b, int64_t n, LaneSum& s, LaneSum& p) {
  LaneDoubles sa = s.lanes, sp = p.lanes;
  int64_t i = 0;
  for (; i + kSumLanes <= n; i += kSumLanes) {
    const LaneDoubles v = LoadLanes(a + i);
    sa += v;
    sp += v * LoadLanes(b + i);
  }
  if (i < n) {
    const LaneDoubles v = LoadTail(a + i, n - i);
    sa += v;
    sp += v * LoadTail(b + i, n - i);
  }
  s.lanes = sa;
  p.lanes = sp;
}

}  // namespace caffeonspark
