// Parallel loops over elements, rows or planes: the one place that decides when a CPU loop
// is worth OpenMP's thread team. The per-index work is a functor, so the same per-element
// math can later be handed to a GPU kernel. Bodies must not throw (an exception cannot
// leave an OpenMP region).
// Tests: tests/layers/test_parallel_loops.py (one thread against all, above the threshold);
// every layer and update rule test runs through these loops below it.
#pragma once

#include <cstdint>

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

// ParallelFor for bodies that need a scratch buffer: each thread makes its own once with
// make_scratch() and the body gets it as body(i, scratch).
template <typename MakeScratch, typename Body>
inline void ParallelForWithScratch(int64_t count, int64_t work, MakeScratch make_scratch,
                                   Body body) {
#pragma omp parallel if (WorthParallel(work))
  {
    auto scratch = make_scratch();
#pragma omp for
    for (int64_t i = 0; i < count; ++i) body(i, scratch);
  }
}

}  // namespace caffeonspark
