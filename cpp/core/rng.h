// The engine's random numbers: one mt19937 per process, seeded by set_random_seed (the
// solver's random_seed), so fillers, dropout masks and crops repeat run to run.
#pragma once

#include <cstdint>
#include <random>

namespace caffeonspark {

std::mt19937& rng();
void set_random_seed(uint64_t seed);

// Uniform in [a, b), Gaussian N(mean, std), Bernoulli(p) as 0/1.
void rng_uniform(int64_t n, float a, float b, float* out);
void rng_gaussian(int64_t n, float mean, float std, float* out);
void rng_bernoulli(int64_t n, float p, unsigned* out);
uint32_t rng_int(uint32_t bound);  // uniform in [0, bound)

}  // namespace caffeonspark
