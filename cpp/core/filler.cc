#include "core/filler.h"

#include <cmath>
#include <vector>

#include "core/errors.h"
#include "core/math.h"
#include "core/rng.h"

namespace caffeonspark {

namespace {

// n of xavier / msra: fan_in, fan_out or their mean by variance_norm.
float VarianceScale(const Params& filler, const Tensor& t, const std::string& owner) {
  COS_CHECK(t.num_axes() >= 1 && t.count() > 0, ShapeError, owner, "cannot fill an empty tensor");
  float fan_in = static_cast<float>(t.count()) / t.shape(0);
  float fan_out = t.num_axes() > 1 ? static_cast<float>(t.count()) / t.shape(1)
                                   : static_cast<float>(t.count());
  const std::string& norm = filler.str("variance_norm");
  if (norm == "FAN_OUT") return fan_out;
  if (norm == "AVERAGE") return (fan_in + fan_out) / 2.0f;
  return fan_in;
}

void Sparsify(const Params& filler, Tensor* t, const std::string& owner) {
  int sparse = filler.integer("sparse");
  if (sparse < 0) return;
  COS_CHECK(t->num_axes() >= 1 && t->shape(0) > 0, ShapeError, owner,
            "sparse filler needs a non-empty tensor");
  float keep = static_cast<float>(sparse) / t->shape(0);
  std::vector<unsigned> mask(t->count());
  rng_bernoulli(t->count(), keep, mask.data());
  float* d = t->mutable_data();
  for (int64_t i = 0; i < t->count(); ++i) d[i] *= static_cast<float>(mask[i]);
}

}  // namespace

void Fill(const Params& filler, Tensor* t, const std::string& owner) {
  const std::string& type = filler.str("type");
  COS_CHECK(type == "gaussian" || filler.integer("sparse") < 0, ConfigError, owner,
            "only the gaussian filler accepts 'sparse' (filler '", type, "')");
  float* d = t->mutable_data();
  const int64_t n = t->count();
  if (type == "constant") {
    fill(n, filler.real("value"), d);
  } else if (type == "uniform") {
    rng_uniform(n, filler.real("min"), filler.real("max"), d);
  } else if (type == "gaussian") {
    rng_gaussian(n, filler.real("mean"), filler.real("std"), d);
    Sparsify(filler, t, owner);
  } else if (type == "positive_unitball") {
    rng_uniform(n, 0.0f, 1.0f, d);
    int64_t rows = t->shape(0), dim = n / rows;
    for (int64_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (int64_t j = 0; j < dim; ++j) sum += d[r * dim + j];
      for (int64_t j = 0; j < dim; ++j) d[r * dim + j] = static_cast<float>(d[r * dim + j] / sum);
    }
  } else if (type == "xavier") {
    float limit = std::sqrt(3.0f / VarianceScale(filler, *t, owner));
    rng_uniform(n, -limit, limit, d);
  } else if (type == "msra") {
    rng_gaussian(n, 0.0f, std::sqrt(2.0f / VarianceScale(filler, *t, owner)), d);
  } else if (type == "bilinear") {
    COS_CHECK(t->num_axes() == 4 && t->shape(2) == t->shape(3), ShapeError, owner,
              "bilinear filler needs a 4-D tensor with square kernels, got ", t->shape_string());
    int k = t->shape(3);
    float f = std::ceil(k / 2.0f);
    float c = (k - 1) / (2.0f * f);
    int64_t plane = static_cast<int64_t>(k) * k;
    for (int64_t i = 0; i < n; ++i) {
      int64_t in_plane = i % plane;
      float x = static_cast<float>(in_plane % k), y = static_cast<float>(in_plane / k);
      d[i] = (1 - std::fabs(x / f - c)) * (1 - std::fabs(y / f - c));
    }
  } else {
    throw ConfigError(Msg(owner, "unknown filler type '", type,
                          "' (known: constant, uniform, gaussian, positive_unitball, xavier, msra, bilinear)"));
  }
}

}  // namespace caffeonspark
