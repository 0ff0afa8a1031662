// small_gemm (see small_gemm.h): tiles of MR rows × NV vectors of C held in registers, written
// with GCC/Clang vector extensions so one source serves AVX-512, AVX2 and narrower targets;
// `acc += s * b` contracts to one FMA per step (GNU C++ contracts by default).
#include "core/small_gemm.h"

#include <algorithm>
#include <memory>
#include <new>
#include <vector>

#include "core/errors.h"
#include "core/math.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace caffeonspark {

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16, kMaxVectors = 3;  // 32 vector registers
#elif defined(__AVX__)
constexpr int kLanes = 8, kMaxVectors = 2;   // 16 vector registers
#else
constexpr int kLanes = 4, kMaxVectors = 2;
#endif

typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
// The same vector at any float alignment, allowed to alias float storage: loads and stores.
typedef float UnalignedVec
    __attribute__((vector_size(kLanes * sizeof(float)), aligned(alignof(float)), may_alias));

inline Vec Load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
inline void Store(float* p, const Vec& v) { *reinterpret_cast<UnalignedVec*>(p) = v; }

// Rows of C per tile for NV vectors: enough independent accumulators to hide the FMA latency,
// few enough that accumulators + B vectors fit the register file.
template <int NV>
constexpr int TileRows() {
  if (kMaxVectors >= 3) return NV >= 4 ? 6 : NV == 3 ? 8 : NV == 2 ? 12 : 16;
  return NV >= 3 ? 4 : NV == 2 ? 6 : 8;
}

// How A is addressed: kRows A(m, l) = a[m·a_row + l] (A as stored), kColumns
// a[m + l·a_col] (Aᵀ stored), kGather a[a_rows[m] + a_cols[l]].
enum class Form { kRows, kColumns, kGather };

struct Operands {
  int L;
  const float* a;
  long a_row, a_col;
  const int* a_rows;
  const int* a_cols;
  const float* b;
  long ldb;
  bool accumulate;
  float* c;
  long ldc;
};

// C rows [m0, m0 + MR) × columns [n0, n0 + NV·kLanes), kept in registers over all of L.
template <int MR, int NV, Form F>
void Tile(const Operands& o, int m0, int n0) {
  const int L = o.L;
  const float* b = o.b + n0;
  const long ldb = o.ldb;
  float* c = o.c + m0 * o.ldc + n0;
  Vec acc[MR][NV];
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[m][v] = o.accumulate ? Load(c + m * o.ldc + v * kLanes) : Vec{};
  }
  if constexpr (F == Form::kColumns) {
    const long a_col = o.a_col;
    for (int l = 0; l < L; ++l) {
      Vec bv[NV];
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = Load(b + l * ldb + v * kLanes);
      const float* column = o.a + m0 + l * a_col;
      #pragma GCC unroll 16
      for (int m = 0; m < MR; ++m) {
        const float s = column[m];
        #pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[m][v] += s * bv[v];
      }
    }
  } else {
    const float* row[MR];
    #pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      row[m] = o.a + (F == Form::kRows ? (m0 + m) * o.a_row : o.a_rows[m0 + m]);
    }
    const int* a_cols = o.a_cols;
    for (int l = 0; l < L; ++l) {
      Vec bv[NV];
      #pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = Load(b + l * ldb + v * kLanes);
      const long at = F == Form::kRows ? l : a_cols[l];
      #pragma GCC unroll 16
      for (int m = 0; m < MR; ++m) {
        const float s = row[m][at];
        #pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[m][v] += s * bv[v];
      }
    }
  }
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
    #pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) Store(c + m * o.ldc + v * kLanes, acc[m][v]);
  }
}

// One tile of `rows` rows starting at row m, `rows` chosen at run time among 1 .. R.
template <int R, int NV, Form F>
void RowTile(int rows, const Operands& o, int m, int n) {
  if constexpr (R > 0) {
    if (rows != R) return RowTile<R - 1, NV, F>(rows, o, m, n);
    Tile<R, NV, F>(o, m, n);
  }
}

// Columns [n, n + NV·kLanes) of C, every row: ceil(M / MR) tiles of nearly equal height (a
// lone short tile would have too few accumulators to hide the FMA latency).
template <int NV, Form F>
void ColumnBlock(int M, const Operands& o, int n) {
  constexpr int MR = TileRows<NV>();
  const int tiles = (M + MR - 1) / MR;
  for (int t = 0, m = 0; t < tiles; ++t) {
    const int rows = (M - m) / (tiles - t);  // the taller tiles come last
    RowTile<MR, NV, F>(rows, o, m, n);
    m += rows;
  }
}

// A per-thread buffer grown without throwing: small_gemm runs inside parallel regions, where
// an exception would end the process (core/parallel.h). Growth happens once per thread and
// size; a failed one returns null and the caller takes its fixed-size path instead.
class EdgeBuffer {
 public:
  float* Zeroed(size_t count) noexcept {
    if (count > size_) {
      data_.reset(new (std::nothrow) float[count]);
      size_ = data_ ? count : 0;
      if (!data_) return nullptr;
    }
    std::fill(data_.get(), data_.get() + count, 0.0f);
    return data_.get();
  }

 private:
  std::unique_ptr<float[]> data_;
  size_t size_ = 0;
};

// The last `width` (< kLanes) columns of C, from column n, through zero-padded copies of B
// (L x kLanes) and C (rows x kLanes): one pass over the whole depth.
template <Form F>
void EdgePass(int M, int n, int width, const Operands& o, float* b_edge, float* c_edge) {
  for (int l = 0; l < o.L; ++l) {
    const float* b = o.b + static_cast<long>(l) * o.ldb + n;
    std::copy(b, b + width, b_edge + static_cast<long>(l) * kLanes);
  }
  if (o.accumulate) {
    for (int m = 0; m < M; ++m) {
      const float* c = o.c + static_cast<long>(m) * o.ldc + n;
      std::copy(c, c + width, c_edge + static_cast<long>(m) * kLanes);
    }
  }
  Operands edge = o;
  edge.b = b_edge;
  edge.ldb = kLanes;
  edge.c = c_edge;
  edge.ldc = kLanes;
  ColumnBlock<1, F>(M, edge, 0);
  for (int m = 0; m < M; ++m) {
    const float* c = c_edge + static_cast<long>(m) * kLanes;
    std::copy(c, c + width, o.c + static_cast<long>(m) * o.ldc + n);
  }
}

// The ragged edge. The common path pads into per-thread buffers in one pass; if those cannot
// grow, the same sums run kEdgeDepth rows of B and kEdgeRows rows of C at a time in stack
// buffers (each C element's sum continues from memory between depth pieces: the same bits).
template <Form F>
void RaggedEdge(int M, int n, int width, const Operands& o) {
  thread_local EdgeBuffer b_buffer, c_buffer;
  float* b_edge = b_buffer.Zeroed(static_cast<size_t>(o.L) * kLanes);
  float* c_edge = b_edge ? c_buffer.Zeroed(static_cast<size_t>(M) * kLanes) : nullptr;
  if (c_edge) {
    EdgePass<F>(M, n, width, o, b_edge, c_edge);
    return;
  }
  constexpr int kEdgeDepth = 256, kEdgeRows = 256;
  alignas(64) float b_stack[kEdgeDepth * kLanes];
  alignas(64) float c_stack[kEdgeRows * kLanes];
  for (int m0 = 0; m0 < M; m0 += kEdgeRows) {
    const int rows = std::min(kEdgeRows, M - m0);
    for (int l0 = 0; l0 < o.L || l0 == 0; l0 += kEdgeDepth) {
      const int depth = std::min(kEdgeDepth, o.L - l0);
      Operands piece = o;
      piece.L = depth;
      piece.accumulate = o.accumulate || l0 > 0;
      piece.b = o.b + static_cast<long>(l0) * o.ldb;
      piece.c = o.c + static_cast<long>(m0) * o.ldc;
      if constexpr (F == Form::kRows) piece.a += static_cast<long>(m0) * o.a_row + l0;
      if constexpr (F == Form::kColumns) piece.a += m0 + static_cast<long>(l0) * o.a_col;
      if constexpr (F == Form::kGather) {
        piece.a_rows += m0;
        piece.a_cols += l0;
      }
      std::fill(b_stack, b_stack + depth * kLanes, 0.0f);
      std::fill(c_stack, c_stack + rows * kLanes, 0.0f);
      EdgePass<F>(rows, n, width, piece, b_stack, c_stack);
    }
  }
}

template <Form F>
void ColumnBlocks(int M, int N, const Operands& o) {
  // Narrow products (N <= kMaxVectors + 1 vectors, e.g. one output-channel block) take one
  // block of exactly their width; wider ones blocks of kMaxVectors and a narrower last one.
  int n = 0;
  const int wide = kMaxVectors * kLanes;
  if (N % kLanes == 0 && N <= (kMaxVectors + 1) * kLanes && N > wide) {
    ColumnBlock<kMaxVectors + 1, F>(M, o, 0);
    return;
  }
  for (; n + wide <= N; n += wide) ColumnBlock<kMaxVectors, F>(M, o, n);
  if constexpr (kMaxVectors >= 3) {
    if (n + 2 * kLanes <= N) {
      ColumnBlock<2, F>(M, o, n);
      n += 2 * kLanes;
    }
  }
  if (n + kLanes <= N) {
    ColumnBlock<1, F>(M, o, n);
    n += kLanes;
  }
  if (n == N) return;
  RaggedEdge<F>(M, n, N - n, o);
}

// The contraction in nearly equal chunks about kDepth deep: a chunk of B (kDepth rows of a
// column block) stays in cache while every row tile uses it (AlexNet conv3 forward, L = 2304:
// 109 -> 129 GFLOP/s; CIFAR shapes unchanged). Later chunks continue each C element's running
// sum from memory (stores and loads are exact), so the bits are those of one pass.
constexpr int kDepth = 256;

template <Form F>
void Chunked(int M, int N, const Operands& o) {
  const int chunks = std::max(1, (o.L + kDepth / 2) / kDepth);
  for (int i = 0, l0 = 0; i < chunks; ++i) {
    Operands chunk = o;
    chunk.L = (o.L - l0) / (chunks - i);
    chunk.accumulate = o.accumulate || l0 > 0;
    if constexpr (F == Form::kRows) chunk.a += l0;
    if constexpr (F == Form::kColumns) chunk.a += l0 * o.a_col;
    if constexpr (F == Form::kGather) chunk.a_cols += l0;
    chunk.b += l0 * o.ldb;
    ColumnBlocks<F>(M, N, chunk);
    l0 += chunk.L;
  }
}

// Outside a parallel region, large products split their rows over the engine's threads (one
// image of a convolution, batch 1); each element is still one tile's sum over l in order, so
// the result does not depend on the split.
template <Form F>
void Run(int M, int N, const Operands& o) {
#ifdef _OPENMP
  const int threads = omp_in_parallel() ? 1 : num_threads();
#else
  const int threads = 1;
#endif
  const int parts = std::min(threads, M / 32);
  if (parts <= 1 || 2.0 * M * N * o.L < 4e6) {
    Chunked<F>(M, N, o);
    return;
  }
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) {
    const int m0 = static_cast<int>(static_cast<long>(M) * p / parts);
    const int m1 = static_cast<int>(static_cast<long>(M) * (p + 1) / parts);
    Operands rows = o;
    if constexpr (F == Form::kRows) rows.a += m0 * o.a_row;
    if constexpr (F == Form::kColumns) rows.a += m0;
    if constexpr (F == Form::kGather) rows.a_rows += m0;
    rows.c += m0 * o.ldc;
    Chunked<F>(m1 - m0, N, rows);
  }
}

}  // namespace

void small_gemm(int M, int N, int L, const float* a, long a_row, long a_col, const float* b,
                long ldb, bool accumulate, float* c, long ldc) {
  COS_CHECK(a_row == 1 || a_col == 1, InternalError, "small_gemm reads A with a unit stride on one axis (a_row ",
            a_row, ", a_col ", a_col, ")");
  if (M <= 0 || N <= 0) return;
  const Operands o{L, a, a_row, a_col, nullptr, nullptr, b, ldb, accumulate, c, ldc};
  if (a_col == 1) {
    Run<Form::kRows>(M, N, o);
  } else {
    Run<Form::kColumns>(M, N, o);
  }
}

void small_gemm_gather(int M, int N, int L, const float* a, const int* a_rows, const int* a_cols,
                       const float* b, long ldb, bool accumulate, float* c, long ldc) {
  if (M <= 0 || N <= 0) return;
  const Operands o{L, a, 0, 0, a_rows, a_cols, b, ldb, accumulate, c, ldc};
  Run<Form::kGather>(M, N, o);
}

}  // namespace caffeonspark
