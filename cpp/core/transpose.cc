// transpose (see transpose.h).
#include "core/transpose.h"

namespace caffeonspark {

namespace {

constexpr int kBlock = 16;
typedef float Floats __attribute__((vector_size(kBlock * sizeof(float))));
typedef int Ints __attribute__((vector_size(kBlock * sizeof(int))));
typedef float UnalignedFloats
    __attribute__((vector_size(kBlock * sizeof(float)), aligned(alignof(float)), may_alias));

// Shuffle masks swapping bit b of the row index with bit b of the lane index for a row pair
// (i, i + 2^b), i without bit b: the first row keeps its lanes without bit b and takes the
// partner's lanes j − 2^b into the others; the second takes the first's lanes j + 2^b.
struct Masks {
  Ints low[4], high[4];
  constexpr Masks() : low(), high() {
    for (int b = 0; b < 4; ++b) {
      const int step = 1 << b;
      for (int j = 0; j < kBlock; ++j) {
        const bool set = (j & step) != 0;
        low[b][j] = set ? kBlock + j - step : j;
        high[b][j] = set ? kBlock + j : j + step;
      }
    }
  }
};

void Block(const float* src, long src_ld, float* dst, long dst_ld, const float* add,
           double* row_sums) {
  static const Masks masks;
  Floats row[kBlock];
  for (int i = 0; i < kBlock; ++i) row[i] = *reinterpret_cast<const UnalignedFloats*>(src + i * src_ld);
  for (int b = 0; b < 4; ++b) {
    const int step = 1 << b;
    for (int i = 0; i < kBlock; ++i) {
      if (i & step) continue;
      const Floats first = row[i], second = row[i + step];
      row[i] = __builtin_shuffle(first, second, masks.low[b]);
      row[i + step] = __builtin_shuffle(first, second, masks.high[b]);
    }
  }
  for (int j = 0; j < kBlock; ++j) {
    *reinterpret_cast<UnalignedFloats*>(dst + j * dst_ld) = add ? row[j] + add[j] : row[j];
  }
  if (row_sums) {
    Floats sum = row[0];  // the transposed rows are the source columns: their sum, per source row
    for (int j = 1; j < kBlock; ++j) sum += row[j];
    for (int i = 0; i < kBlock; ++i) row_sums[i] += sum[i];
  }
}

}  // namespace

void transpose(const float* src, long src_ld, int rows, int cols, float* dst, long dst_ld,
               const float* add, double* row_sums) {
  const int full_rows = rows - rows % kBlock, full_cols = cols - cols % kBlock;
  auto one = [&](int r, int c) {
    const float v = src[r * src_ld + c];
    dst[c * dst_ld + r] = add ? v + add[c] : v;
    if (row_sums) row_sums[r] += v;
  };
  for (int r = 0; r < full_rows; r += kBlock) {
    for (int c = 0; c < full_cols; c += kBlock) {
      Block(src + r * src_ld + c, src_ld, dst + c * dst_ld + r, dst_ld, add ? add + c : nullptr,
            row_sums ? row_sums + r : nullptr);
    }
    for (int c = full_cols; c < cols; ++c) {
      for (int i = r; i < r + kBlock; ++i) one(i, c);
    }
  }
  for (int c = 0; c < cols; ++c) {
    for (int r = full_rows; r < rows; ++r) one(r, c);
  }
}

}  // namespace caffeonspark
