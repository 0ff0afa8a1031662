// Parallel loops over elements, rows or planes: the one place that decides when a CPU loop
// is worth OpenMP's thread team. The per-index work is a functor, so the same per-element
// math can later be handed to a GPU kernel.
// The rule for every OpenMP region in the engine (these loops, the GEMM splits, the
// convolution's per-image loop): bodies must not throw or allocate. An exception that reaches
// the end of a region calls std::terminate, which kills the interpreter (in Spark, the
// executor, with no message); std::bad_alloc is such an exception. So sizes are checked at
// Reshape (core/checked_size.h) and every buffer a body writes is allocated before the region.
// Tests: tests/layers/test_parallel_loops.py (one thread against all, above the threshold);
// every layer and update rule test runs through these loops below it.
#pragma once

#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

// Loops with at most this much work stay on the calling thread. The unit is one element of
// a simple float loop (a few flops, memory bound). Waking and joining the OpenMP team costs
// a few microseconds, about what one core spends on some tens of thousands of such
// elements, so smaller loops lose more to the fork than they gain from the split. A round
// power of two chosen by hand when the first layers were written, not tuned per site.
inline constexpr int64_t kParallelWorkThreshold = 65536;

// Work units of one element in the windowed loops of Pooling and LRN (each output reads a
// window of inputs; LRN also calls pow): they go parallel at half the element count.
inline constexpr int64_t kWindowedElementWork = 2;

inline bool WorthParallel(int64_t work) { return work > kParallelWorkThreshold; }

// Runs body(i) for i in [0, count), split over the OpenMP team when `work` (in units of
// one simple element, see above) exceeds kParallelWorkThreshold. Use it for loops over rows
// or planes, whose iterations each cover many elements.
template <typename Body>
inline void ParallelFor(int64_t count, int64_t work, Body body) {
#pragma omp parallel for if (WorthParallel(work))
  for (int64_t i = 0; i < count; ++i) body(i);
}

// Element loops: each index is one unit of work.
template <typename Body>
inline void ParallelFor(int64_t count, Body body) {
  ParallelFor(count, count, body);
}

// Element loops over [0, count) as body(begin, end) on consecutive ranges of kElementRange
// elements. The body can pass plain pointers and scalars to a simple loop, which the
// compiler vectorises; a per-element lambda reads its captures through references that a
// float store may alias, which keeps some loops scalar.
inline constexpr int64_t kElementRange = 16384;

template <typename Body>
inline void ParallelForRanges(int64_t count, Body body) {
  const int64_t ranges = (count + kElementRange - 1) / kElementRange;
  ParallelFor(ranges, count, [&](int64_t r) {
    const int64_t begin = r * kElementRange;
    body(begin, count - begin < kElementRange ? count : begin + kElementRange);
  });
}

// ParallelFor for bodies that need a scratch buffer: one per thread of the team, all made
// with make_scratch() before the region (where an allocation may throw), and the body gets
// its thread's as body(i, scratch).
template <typename MakeScratch, typename Body>
inline void ParallelForWithScratch(int64_t count, int64_t work, MakeScratch make_scratch,
                                   Body body) {
  const bool parallel = WorthParallel(work);
#ifdef _OPENMP
  const int threads = parallel ? omp_get_max_threads() : 1;
#else
  const int threads = 1;
#endif
  std::vector<decltype(make_scratch())> scratch;
  scratch.reserve(threads);
  for (int t = 0; t < threads; ++t) scratch.push_back(make_scratch());
#pragma omp parallel num_threads(threads) if (parallel)
  {
#ifdef _OPENMP
    auto& mine = scratch[omp_get_thread_num()];
#else
    auto& mine = scratch[0];
#endif
#pragma omp for
    for (int64_t i = 0; i < count; ++i) body(i, mine);
  }
}

}  // namespace caffeonspark
