#include "core/rng.h"

#include <cmath>

#include "core/errors.h"

namespace caffeonspark {

std::mt19937& rng() {
  static std::mt19937 engine(std::random_device{}());
  return engine;
}

void set_random_seed(uint64_t seed) { rng().seed(static_cast<std::mt19937::result_type>(seed)); }

void rng_uniform(int64_t n, float a, float b, float* out) {
  COS_CHECK(a <= b, ConfigError, "uniform range [", a, ", ", b, ") is empty");
  std::uniform_real_distribution<float> dist(a, std::nextafter(b, b + 1.0f));
  for (int64_t i = 0; i < n; ++i) out[i] = a == b ? a : dist(rng());
}

void rng_gaussian(int64_t n, float mean, float std, float* out) {
  COS_CHECK(std > 0, ConfigError, "gaussian std must be positive, got ", std);
  std::normal_distribution<float> dist(mean, std);
  for (int64_t i = 0; i < n; ++i) out[i] = dist(rng());
}

void rng_bernoulli(int64_t n, float p, unsigned* out) {
  COS_CHECK(p >= 0 && p <= 1, ConfigError, "bernoulli probability ", p, " outside [0, 1]");
  std::bernoulli_distribution dist(p);
  for (int64_t i = 0; i < n; ++i) out[i] = dist(rng()) ? 1u : 0u;
}

uint32_t rng_int(uint32_t bound) {
  std::uniform_int_distribution<uint32_t> dist(0, bound - 1);
  return dist(rng());
}

}  // namespace caffeonspark
