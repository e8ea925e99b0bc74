#include "train/gemm_f32.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EMBER_TRAIN_AVX2 1
#endif

#include <cstring>

#include "core/threadpool.h"
#include "kernels/kernels.h"

namespace ember {
namespace train {

namespace {

constexpr size_t kNR = 16;   // columns per packed B panel (two AVX2 registers)
constexpr size_t kMR = 6;    // rows per micro-tile: 12 accumulators + 2 B registers + 1 broadcast
constexpr size_t kKC = 256;  // depth block: a 256 x 16 B panel (16 KB) stays in L1 across the row tiles

inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Micro-kernel: C tile (MR rows, nr <= 16 valid columns) over a depth block of kc. B rows are brs floats
// apart (16 for packed panels). acc: add into C; bias (nullable): added (first depth block only).
using KernelFn = void (*)(size_t kc, const float* a, size_t rs, size_t cs, const float* b, size_t brs, float* c,
                          size_t ldc, size_t nr, bool acc, const float* bias);

template <size_t MR>
void kernel_scalar(size_t kc, const float* a, size_t rs, size_t cs, const float* b, size_t brs, float* c, size_t ldc,
                   size_t nr, bool acc, const float* bias) {
  float t[MR][kNR] = {};
  for (size_t p = 0; p < kc; ++p, a += cs, b += brs)
    for (size_t r = 0; r < MR; ++r) {
      const float av = a[r * rs];
      for (size_t j = 0; j < nr; ++j) t[r][j] += av * b[j];
    }
  for (size_t r = 0; r < MR; ++r)
    for (size_t j = 0; j < nr; ++j) {
      float v = t[r][j];
      if (bias) v += bias[j];
      c[r * ldc + j] = acc ? c[r * ldc + j] + v : v;
    }
}

const int32_t kMaskTable[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};

// MASK: nr < 16, so loads of B, bias and C and stores of C are masked to the valid columns.
#if EMBER_TRAIN_AVX2
template <size_t MR, bool MASK>
__attribute__((target("avx2,fma"))) void kernel_avx2_impl(size_t kc, const float* a, size_t rs, size_t cs,
                                                          const float* b, size_t brs, float* c, size_t ldc, size_t nr,
                                                          bool acc, const float* bias) {
  __m256i m0 = _mm256_set1_epi32(-1), m1 = m0;
  if (MASK) {
    m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 16 - (nr < 8 ? nr : 8)));
    m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 16 - (nr > 8 ? nr - 8 : 0)));
  }
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (size_t r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  const float* ar[MR];
#pragma GCC unroll 6
  for (size_t r = 0; r < MR; ++r) ar[r] = a + r * rs;
  for (size_t p = 0; p < kc; ++p) {
    const __m256 b0 = MASK ? _mm256_maskload_ps(b, m0) : _mm256_loadu_ps(b);
    const __m256 b1 = MASK ? _mm256_maskload_ps(b + 8, m1) : _mm256_loadu_ps(b + 8);
    b += brs;
#pragma GCC unroll 6
    for (size_t r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(ar[r]);
      ar[r] += cs;
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
  }
  if (bias) {
    const __m256 bb0 = _mm256_maskload_ps(bias, m0), bb1 = _mm256_maskload_ps(bias + 8, m1);
#pragma GCC unroll 6
    for (size_t r = 0; r < MR; ++r) {
      c0[r] = _mm256_add_ps(c0[r], bb0);
      c1[r] = _mm256_add_ps(c1[r], bb1);
    }
  }
#pragma GCC unroll 6
  for (size_t r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
    if (MASK) {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_maskload_ps(cr, m0), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), c1[r]);
      }
      _mm256_maskstore_ps(cr, m0, c0[r]);
      _mm256_maskstore_ps(cr + 8, m1, c1[r]);
    } else {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]);
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    }
  }
}

template <size_t MR>
void kernel_avx2(size_t kc, const float* a, size_t rs, size_t cs, const float* b, size_t brs, float* c, size_t ldc,
                 size_t nr, bool acc, const float* bias) {
  if (nr == kNR) kernel_avx2_impl<MR, false>(kc, a, rs, cs, b, brs, c, ldc, nr, acc, bias);
  else kernel_avx2_impl<MR, true>(kc, a, rs, cs, b, brs, c, ldc, nr, acc, bias);
}

#endif

struct KernelSet {
  KernelFn k[kMR + 1];
};
const KernelSet kScalar = {{nullptr, kernel_scalar<1>, kernel_scalar<2>, kernel_scalar<3>, kernel_scalar<4>,
                            kernel_scalar<5>, kernel_scalar<6>}};
#if EMBER_TRAIN_AVX2
const KernelSet kAvx2 = {{nullptr, kernel_avx2<1>, kernel_avx2<2>, kernel_avx2<3>, kernel_avx2<4>, kernel_avx2<5>,
                          kernel_avx2<6>}};
const KernelSet* const kFast = &kAvx2;
// Every SIMD table of an x86 build needs AVX2 + FMA (select_x86.cpp lists one only on such a CPU), so
// any table but the reference means the micro-kernel runs.
bool detect_avx2() { return &kernels() != &reference_kernels(); }
#else  // other ISAs run the portable micro-kernel until the GEMM moves into the kernel tables
const KernelSet* const kFast = &kScalar;
bool detect_avx2() { return false; }
#endif

struct Job {
  const KernelSet* ks;
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
        J.ks->k[mr](kc, J.a.p + i * J.a.rs + p0 * J.a.cs, J.a.rs, J.a.cs, bp, kNR, J.c + i * J.ldc + j0, J.ldc, nr,
                    acc, bias);
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

namespace {
#if EMBER_TRAIN_AVX2
// dst[p * 16 + c] = src[c * ld + p] for an 8 x 8 block (columns c, rows p): B's columns contiguous.
__attribute__((target("avx2,fma"))) void transpose8x8_avx2(const float* src, size_t ld, float* dst) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * ld), r1 = _mm256_loadu_ps(src + 1 * ld), r2 = _mm256_loadu_ps(src + 2 * ld),
         r3 = _mm256_loadu_ps(src + 3 * ld), r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
         r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
         u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * kNR, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * kNR, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * kNR, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * kNR, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * kNR, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * kNR, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * kNR, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * kNR, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif
}  // namespace

void gemm_pack_b(size_t k, size_t n, MatRef b, float* pack) {
  const bool avx2 = gemm_f32_uses_avx2();
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
    size_t p0 = 0;
#if EMBER_TRAIN_AVX2
    if (avx2 && b.rs == 1 && nr == kNR)  // columns contiguous: 8 x 8 transposes
      for (; p0 + 8 <= k; p0 += 8) {
        transpose8x8_avx2(b.p + j0 * b.cs + p0, b.cs, dst + p0 * kNR);
        transpose8x8_avx2(b.p + (j0 + 8) * b.cs + p0, b.cs, dst + p0 * kNR + 8);
      }
#else
    (void)avx2;
#endif
    // General strides (and the rows left over): column by column, 8 rows at a time.
    for (; p0 < k; p0 += 8) {
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

bool gemm_f32_uses_avx2() {
  static const bool avx2 = detect_avx2();
  return avx2;
}

void gemm_f32(ThreadPool* pool, size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias, float* c,
              size_t ldc, bool accumulate, float* pack, float* a_rowsum) {
  if (m == 0 || n == 0) return;
  Job J{gemm_f32_uses_avx2() ? kFast : &kScalar, m, n, k, a, b, pack, bias, c, ldc, accumulate, a_rowsum};
  if (k == 0) return fill_bias_only(J);
  run_col_split(pool, J);
}

void gemm_f32_packed(ThreadPool* pool, size_t m, size_t n, size_t k, MatRef a, const float* packed_b,
                     const float* bias, float* c, size_t ldc, bool accumulate, float* a_rowsum) {
  if (m == 0 || n == 0) return;
  Job J{gemm_f32_uses_avx2() ? kFast : &kScalar, m, n, k, a, MatRef{nullptr, 0, 0}, const_cast<float*>(packed_b),
        bias, c, ldc, accumulate, a_rowsum};
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

}  // namespace train
}  // namespace ember
