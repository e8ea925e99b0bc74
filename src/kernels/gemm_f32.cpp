#include "kernels/gemm_f32.h"

#include <cstring>

namespace ember {

namespace {

constexpr size_t kNR = 16;   // columns per packed B panel (gemm_f32_tile's)
constexpr size_t kMR = 6;    // rows per micro-tile (gemm_f32_tile's maximum)
constexpr size_t kKC = 256;  // depth block: a 256 x 16 B panel (16 KB) stays in L1 across the row tiles

inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

struct Job {
  const Kernels* K;
  size_t m, n, k;
  MatRef a;
  MatRef b;          // the source of B (column-split mode packs it per task)
  float* pack;       // packed panels (given, or filled per task)
  const float* bias;
  float* c;
  size_t ldc;
  bool accumulate;
  float* rowsum;
};

void rowsums(const Job& J, size_t i0, size_t i1) {
  const MatRef& a = J.a;
  if (a.rs == 1) {
    for (size_t p = 0; p < J.k; ++p) {
      const float* ap = a.p + p * a.cs;
      for (size_t i = i0; i < i1; ++i) J.rowsum[i] += ap[i];
    }
  } else {
    for (size_t i = i0; i < i1; ++i) {
      float s = 0.0f;
      for (size_t p = 0; p < J.k; ++p) s += a.p[i * a.rs + p * a.cs];
      J.rowsum[i] += s;
    }
  }
}

// Rows [i0, i1) x panels [j0, j1) of C from packed panels.
void compute_block(const Job& J, size_t i0, size_t i1, size_t jp0, size_t jp1) {
  for (size_t p0 = 0; p0 < J.k; p0 += kKC) {
    const size_t kc = J.k - p0 < kKC ? J.k - p0 : kKC;
    const bool acc = J.accumulate || p0 > 0;
    const bool first = p0 == 0;
    for (size_t j = jp0; j < jp1; ++j) {
      const size_t j0 = j * kNR, nr = J.n - j0 < kNR ? J.n - j0 : kNR;
      const float* bp = J.pack + j * J.k * kNR + p0 * kNR;
      const float* bias = first && J.bias ? J.bias + j0 : nullptr;
      for (size_t i = i0; i < i1; i += kMR) {
        const size_t mr = i1 - i < kMR ? i1 - i : kMR;
        J.K->gemm_f32_tile(mr, nr, kc, J.a.p + i * J.a.rs + p0 * J.a.cs, J.a.rs, J.a.cs, bp, J.c + i * J.ldc + j0,
                           J.ldc, acc, bias);
      }
    }
  }
}

void pack_panels(const Job& J, size_t jp0, size_t jp1) {
  for (size_t j = jp0; j < jp1; ++j) {
    const size_t j0 = j * kNR, nr = J.n - j0 < kNR ? J.n - j0 : kNR;
    gemm_pack_b(J.k, nr, MatRef{J.b.p + j0 * J.b.cs, J.b.rs, J.b.cs}, J.pack + j * J.k * kNR);
  }
}

void fill_bias_only(const Job& J) {
  for (size_t i = 0; i < J.m; ++i)
    for (size_t j = 0; j < J.n; ++j) {
      const float v = J.bias ? J.bias[j] : 0.0f;
      J.c[i * J.ldc + j] = J.accumulate ? J.c[i * J.ldc + j] + v : v;
    }
}

// B packed already: tasks are blocks of rows (each reads all of B from the shared panels).
void run_row_split(ThreadPool* pool, Job& J) {
  const size_t threads = pool ? pool->n_threads() : 1;
  const size_t panels = (J.n + kNR - 1) / kNR;
  // About 6 row groups per thread (the pool's shared counter evens out a busy neighbour), each at
  // least 4 tiles tall; a single group on one thread.
  size_t rows = J.m;
  if (threads > 1) {
    rows = round_up((J.m + 6 * threads - 1) / (6 * threads), kMR);
    if (rows < 4 * kMR) rows = 4 * kMR;
  }
  const size_t groups = (J.m + rows - 1) / rows;
  auto task = [&J, rows, panels](size_t g) {
    const size_t i0 = g * rows, i1 = i0 + rows < J.m ? i0 + rows : J.m;
    compute_block(J, i0, i1, 0, panels);
    if (J.rowsum) rowsums(J, i0, i1);
  };
  if (groups == 1) task(0);
  else parallel_for(pool, groups, task);
}

// B packed per call: tasks are groups of column panels; each packs its own panels (no extra pass over
// B, no barrier between packing and computing) and runs all rows on them. The row sums of A, if
// wanted, are one more task.
void run_col_split(ThreadPool* pool, Job& J) {
  const size_t threads = pool ? pool->n_threads() : 1;
  const size_t panels = (J.n + kNR - 1) / kNR;
  size_t per = panels;
  if (threads > 1) per = (panels + 4 * threads - 1) / (4 * threads);
  if (per == 0) per = 1;
  const size_t groups = (panels + per - 1) / per;
  auto task = [&J, per, panels, groups](size_t g) {
    if (g == groups) {
      rowsums(J, 0, J.m);
      return;
    }
    const size_t jp0 = g * per, jp1 = jp0 + per < panels ? jp0 + per : panels;
    pack_panels(J, jp0, jp1);
    compute_block(J, 0, J.m, jp0, jp1);
  };
  const size_t tasks = groups + (J.rowsum ? 1 : 0);
  if (!pool || tasks == 1) {
    for (size_t g = 0; g < tasks; ++g) task(g);
  } else {
    parallel_for(pool, tasks, task);
  }
}

}  // namespace

size_t gemm_pack_floats(size_t k, size_t n) { return round_up(n, kNR) * k; }

void gemm_pack_b(size_t k, size_t n, MatRef b, float* pack) {
  for (size_t j0 = 0; j0 < n; j0 += kNR) {
    float* dst = pack + (j0 / kNR) * k * kNR;
    const size_t nr = n - j0 < kNR ? n - j0 : kNR;
    if (b.cs == 1) {  // row-major: copy 16-float row pieces
      for (size_t p = 0; p < k; ++p) {
        const float* src = b.p + p * b.rs + j0;
        float* d = dst + p * kNR;
        if (nr == kNR) {
          std::memcpy(d, src, kNR * sizeof(float));
        } else {
          for (size_t c = 0; c < nr; ++c) d[c] = src[c];
          for (size_t c = nr; c < kNR; ++c) d[c] = 0.0f;
        }
      }
      continue;
    }
    // General strides: column by column, 8 rows at a time.
    for (size_t p0 = 0; p0 < k; p0 += 8) {
      const size_t pk = k - p0 < 8 ? k - p0 : 8;
      for (size_t c = 0; c < kNR; ++c) {
        if (c >= nr) {
          for (size_t p = p0; p < p0 + pk; ++p) dst[p * kNR + c] = 0.0f;
          continue;
        }
        const float* src = b.p + (j0 + c) * b.cs;
        for (size_t p = p0; p < p0 + pk; ++p) dst[p * kNR + c] = src[p * b.rs];
      }
    }
  }
}

void gemm_f32(ThreadPool* pool, const Kernels& K, size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias,
              float* c, size_t ldc, bool accumulate, float* pack, float* a_rowsum) {
  if (m == 0 || n == 0) return;
  Job J{&K, m, n, k, a, b, pack, bias, c, ldc, accumulate, a_rowsum};
  if (k == 0) return fill_bias_only(J);
  run_col_split(pool, J);
}

void gemm_f32_packed(ThreadPool* pool, const Kernels& K, size_t m, size_t n, size_t k, MatRef a, const float* packed_b,
                     const float* bias, float* c, size_t ldc, bool accumulate, float* a_rowsum) {
  if (m == 0 || n == 0) return;
  Job J{&K, m, n, k, a, MatRef{nullptr, 0, 0}, const_cast<float*>(packed_b), bias, c, ldc, accumulate, a_rowsum};
  if (k == 0) return fill_bias_only(J);
  run_row_split(pool, J);
}

void gemm_f32_ref(size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias, float* c, size_t ldc,
                  bool accumulate) {
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) {
      double s = bias ? bias[j] : 0.0;
      for (size_t p = 0; p < k; ++p) s += static_cast<double>(a.p[i * a.rs + p * a.cs]) * b.p[p * b.rs + j * b.cs];
      c[i * ldc + j] = accumulate ? static_cast<float>(c[i * ldc + j] + s) : static_cast<float>(s);
    }
}

}  // namespace ember
