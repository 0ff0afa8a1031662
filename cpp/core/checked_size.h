// Checked 64-bit size arithmetic for shapes and buffers computed from user input (prototxt
// kernel/stride/pad, Datum headers): a product or sum that would wrap, or that passes the
// engine's bounds, raises the caller's error type with the caller's prefix (a layer's
// where(), a record's name) before anything is allocated. Sizes are worked out this way at
// Reshape time so that no allocation inside a parallel region can fail (core/parallel.h).
// Tests: tests/hostile/test_layer_sizes.py.
#pragma once

#include <climits>
#include <cstdint>
#include <string>

#include "core/errors.h"

namespace caffeonspark {

// Element count bound for one tensor, one axis and one scratch buffer: Tensor's dimensions and
// the engine's index arithmetic are int32, so any count up to INT_MAX (8 GiB of floats) is
// representable and nothing larger is.
inline constexpr int64_t kMaxElements = INT_MAX;

// a · b for non-negative a, b; throws Err(prefix, what, ...) when the product exceeds
// `limit` (or would overflow int64).
template <typename Err = ConfigError>
int64_t CheckedMul(int64_t a, int64_t b, const std::string& prefix, const char* what,
                   int64_t limit = kMaxElements) {
  if (a < 0 || b < 0) throw Err(Msg(prefix, what, " is negative (", a, " · ", b, ")"));
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out) || out > limit) {
    throw Err(Msg(prefix, what, " (", a, " · ", b, ") exceeds the limit of ", limit, " elements"));
  }
  return out;
}

// a + b; throws when the sum leaves [−limit, limit] (or would overflow int64).
template <typename Err = ConfigError>
int64_t CheckedAdd(int64_t a, int64_t b, const std::string& prefix, const char* what,
                   int64_t limit = kMaxElements) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out) || out > limit || out < -limit) {
    throw Err(Msg(prefix, what, " (", a, " + ", b, ") exceeds the limit of ", limit));
  }
  return out;
}

// The product of `dims` (each >= 0), checked as above.
template <typename Err = ConfigError, typename Dims>
int64_t CheckedCount(const Dims& dims, const std::string& prefix, const char* what,
                     int64_t limit = kMaxElements) {
  int64_t count = 1;
  for (auto d : dims) count = CheckedMul<Err>(count, static_cast<int64_t>(d), prefix, what, limit);
  return count;
}

}  // namespace caffeonspark
