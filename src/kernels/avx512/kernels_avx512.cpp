// The "avx512" table: the "avxvnni" table (without AVX-VNNI, the "avx2" one) with AVX-512 versions of
// the int8 GEMM and the activation quantizer (gemm_q8_avx512.cpp) and of attention's kernels (below),
// each the same bits as the entry it replaces. Entries without a measured gain (dot_f32, the
// elementwise ops) stay the base table's.
// GCC 12's AVX-512 headers draw false -Wuninitialized warnings after inlining (their _mm*_undefined_*
// initialise a variable with itself; GCC bug 105593), located in the header: silenced there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <math.h>
#include <string.h>

#include "kernels/avx2/kernels_avx2.h"
#include "kernels/avx512/kernels_avx512.h"

namespace ember {
namespace {

inline __mmask16 tail16(size_t n) { return static_cast<__mmask16>((1u << n) - 1); }  // lanes [0, n), n in 1..15

// ---- f32 cache attention: scores_f32 (dot_avx2's bits) ----

// [a_lo + a_hi | b_lo + b_hi] (256-bit halves) and, of u = [A0 A1 | B0 B1], w = [C0 C1 | D0 D1] (128-bit
// parts), [A0 + A1, B0 + B1, C0 + C1, D0 + D1].
inline __m512 fold256(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
inline __m512 fold128(__m512 u, __m512 w) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, w, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_f32x4(u, w, _MM_SHUFFLE(3, 1, 3, 1)));
}

// dot_avx2(q, k, d) for d = 32 * NB keeps four 8-lane partial sums s0..s3 (s_i over columns 32 b + 8 i ..
// + 8, b = 0 .. NB-1, the first term an fma onto +0) and returns hsum((s0 + s1) + (s2 + s3)), where
// hsum(v) = (w0 + w2) + (w1 + w3), w = v_lo + v_hi. Here A = [s0 | s1] and B = [s2 | s3] are zmm sums of
// the same fmas in the same order, and eight rows are reduced at once with the same adds:
//   fold256(A_r, A_s) + fold256(B_r, B_s) = [v_r | v_s]   (v = (s0 + s1) + (s2 + s3)) for rows r, s
//   fold128 of two such vectors: w of four rows, one per 128-bit part
//   then (w0 + w2) + (w1 + w3) in each part (hsum4x8).
template <int NB>
struct RowPartials {
  __m512 q[2 * NB];
  explicit RowPartials(const float* qp) {
    for (int i = 0; i < 2 * NB; ++i) q[i] = _mm512_loadu_ps(qp + 16 * i);
  }
  // A = [s0 | s1], B = [s2 | s3] of the row at b.
  void operator()(const float* b, __m512& A, __m512& B) const {
    A = _mm512_fmadd_ps(q[0], _mm512_loadu_ps(b), _mm512_setzero_ps());
    B = _mm512_fmadd_ps(q[1], _mm512_loadu_ps(b + 16), _mm512_setzero_ps());
    for (int blk = 1; blk < NB; ++blk) {
      A = _mm512_fmadd_ps(q[2 * blk], _mm512_loadu_ps(b + 32 * blk), A);
      B = _mm512_fmadd_ps(q[2 * blk + 1], _mm512_loadu_ps(b + 32 * blk + 16), B);
    }
  }
};

// [v_r | v_s] of the rows at r0, r1.
template <int NB>
inline __m512 row_pair(const RowPartials<NB>& dot, const float* r0, const float* r1) {
  __m512 a0, b0, a1, b1;
  dot(r0, a0, b0);
  dot(r1, a1, b1);
  return _mm512_add_ps(fold256(a0, a1), fold256(b0, b1));
}

// The 4 lanes of each 128-bit part of x (rows 0..3) and y (rows 4..7) summed as dot_avx2's hsum does,
// (w0 + w2) + (w1 + w3): 8 floats in row order.
inline __m256 hsum4x8(__m512 x, __m512 y) {
  const __m512 lo = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));  // [x0 x1 y0 y1]
  const __m512 hi = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x), _mm512_castps_pd(y)));  // [x2 x3 y2 y3]
  __m512 s = _mm512_add_ps(lo, hi);                                     // [x0 + x2, x1 + x3, y0 + y2, y1 + y3]
  s = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(2, 3, 0, 1)));  // lane 0: x's sum, lane 2: y's
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, s));
}

template <int NB>
void scores_rows(const float* q, const float* k, size_t n, size_t d, float scale, float* s) {
  const RowPartials<NB> dot(q);
  const __m256 vs = _mm256_set1_ps(scale);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const float* r = k + j * d;
    const __m512 p01 = row_pair(dot, r, r + d), p23 = row_pair(dot, r + 2 * d, r + 3 * d);
    const __m512 p45 = row_pair(dot, r + 4 * d, r + 5 * d), p67 = row_pair(dot, r + 6 * d, r + 7 * d);
    _mm256_storeu_ps(s + j, _mm256_mul_ps(hsum4x8(fold128(p01, p23), fold128(p45, p67)), vs));
  }
  if (j < n) {
    // The last 1..7 rows; missing rows repeat the last one (their results are not stored).
    const float* r[8];
    for (int i = 0; i < 8; ++i) r[i] = k + (j + i < n ? j + i : n - 1) * d;
    const __m512 p01 = row_pair(dot, r[0], r[1]), p23 = row_pair(dot, r[2], r[3]);
    const __m512 p45 = row_pair(dot, r[4], r[5]), p67 = row_pair(dot, r[6], r[7]);
    const __m256 v = _mm256_mul_ps(hsum4x8(fold128(p01, p23), fold128(p45, p67)), vs);
    _mm256_mask_storeu_ps(s + j, static_cast<__mmask8>((1u << (n - j)) - 1), v);
  }
}

// Head sizes 64 and 32 (GPT-2's, and most small models'); others through the avx2 table's.
void scores_f32_avx512(const float* q, const float* k, size_t n, size_t d, float scale, float* s) {
  if (d == 64)
    scores_rows<2>(q, k, n, d, scale, s);
  else if (d == 32)
    scores_rows<1>(q, k, n, d, scale, s);
  else
    avx2_kernels().scores_f32(q, k, n, d, scale, s);
}

// ---- weighted sums of rows: per column a chain of fmas, so any vector width gives the same bits ----

// Columns [i, i + 16 A) of f32-wsum, the accumulators (loaded from out) in registers over all n rows.
// noinline: see kernels_avx2.cpp's wsum_block (inlined, GCC 12 kept such accumulators on the stack).
template <int A>
__attribute__((noinline)) void wsum_block_f32(const float* p, const float* v, size_t n, size_t d, size_t i, float* out) {
  __m512 acc[A];
  for (int a = 0; a < A; ++a) acc[a] = _mm512_loadu_ps(out + i + 16 * a);
  const float* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const __m512 w = _mm512_set1_ps(p[j]);
    for (int a = 0; a < A; ++a) acc[a] = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 16 * a), acc[a]);
  }
  for (int a = 0; a < A; ++a) _mm512_storeu_ps(out + i + 16 * a, acc[a]);
}

// f32-wsum over rows whose every start lies `off` floats (1..15) past a 64-byte boundary (d % 16 == 0,
// NV = d / 16 + 1): the accumulators cover the cache-line-aligned 16-column blocks that the rows span,
// the first and last of them masked, so no load crosses a cache line (the session's KV cache comes from
// calloc, 16-byte aligned: unaligned 64-byte loads of its rows cost more than the 32-byte loads of the
// avx2 table's version). Columns are independent, so which lane holds one does not change its bits.
template <int NV>
__attribute__((noinline)) void wsum_rows_f32_lines(const float* p, const float* v, size_t n, size_t d, size_t off, float* out) {
  const __mmask16 first = static_cast<__mmask16>(0xffffu << off), last = static_cast<__mmask16>(~first);
  // Addresses `off` floats before the rows and out: only the masked lanes are read and written (masked
  // accesses never touch the others), computed as integers (the pointers would lie outside the arrays).
  const uintptr_t ob = reinterpret_cast<uintptr_t>(out) - off * sizeof(float);
  auto at = [](uintptr_t base, int a) { return reinterpret_cast<float*>(base + 64 * static_cast<uintptr_t>(a)); };
  __m512 acc[NV];
  acc[0] = _mm512_maskz_loadu_ps(first, at(ob, 0));
  for (int a = 1; a < NV - 1; ++a) acc[a] = _mm512_loadu_ps(at(ob, a));
  acc[NV - 1] = _mm512_maskz_loadu_ps(last, at(ob, NV - 1));
  uintptr_t row = reinterpret_cast<uintptr_t>(v) - off * sizeof(float);
  for (size_t j = 0; j < n; ++j, row += d * sizeof(float)) {
    const __m512 w = _mm512_set1_ps(p[j]);
    acc[0] = _mm512_fmadd_ps(w, _mm512_maskz_load_ps(first, at(row, 0)), acc[0]);
    for (int a = 1; a < NV - 1; ++a) acc[a] = _mm512_fmadd_ps(w, _mm512_load_ps(at(row, a)), acc[a]);
    acc[NV - 1] = _mm512_fmadd_ps(w, _mm512_maskz_load_ps(last, at(row, NV - 1)), acc[NV - 1]);
  }
  _mm512_mask_storeu_ps(at(ob, 0), first, acc[0]);
  for (int a = 1; a < NV - 1; ++a) _mm512_storeu_ps(at(ob, a), acc[a]);
  _mm512_mask_storeu_ps(at(ob, NV - 1), last, acc[NV - 1]);
}

void wsum_rows_f32_avx512(const float* p, const float* v, size_t n, size_t d, float* out) {
  if (n == 0) return;  // v may be null
  const uintptr_t mis = reinterpret_cast<uintptr_t>(v) % 64;
  if (mis != 0 && mis % 4 == 0 && d % 16 == 0 && d <= 128) {
    const size_t off = mis / 4;
    switch (d / 16) {
      case 1: wsum_rows_f32_lines<2>(p, v, n, d, off, out); return;
      case 2: wsum_rows_f32_lines<3>(p, v, n, d, off, out); return;
      case 3: wsum_rows_f32_lines<4>(p, v, n, d, off, out); return;
      case 4: wsum_rows_f32_lines<5>(p, v, n, d, off, out); return;
      case 8: wsum_rows_f32_lines<9>(p, v, n, d, off, out); return;
      default: break;
    }
  }
  size_t i = 0;
  for (; i + 128 <= d; i += 128) wsum_block_f32<8>(p, v, n, d, i, out);
  if (i + 64 <= d) {
    wsum_block_f32<4>(p, v, n, d, i, out);
    i += 64;
  }
  for (; i + 16 <= d; i += 16) wsum_block_f32<1>(p, v, n, d, i, out);
  if (i < d) {
    const __mmask16 m = tail16(d - i);
    __m512 acc = _mm512_maskz_loadu_ps(m, out + i);
    const float* row = v + i;
    for (size_t j = 0; j < n; ++j, row += d) acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(m, row), acc);
    _mm512_mask_storeu_ps(out + i, m, acc);
  }
}

// 16 int8 at p -> 16 floats (exact); masked: lanes outside m read nothing and give 0.
inline __m512 cvt16(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))); }
inline __m512 cvt16(const int8_t* p, __mmask16 m) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p))); }

template <int A>
__attribute__((noinline)) void wsum_block_q8(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, size_t i, float* out) {
  __m512 acc[A];
  for (int a = 0; a < A; ++a) acc[a] = _mm512_setzero_ps();
  const int8_t* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const __m512 w = _mm512_set1_ps(p[j] * scale[j]);
    for (int a = 0; a < A; ++a) acc[a] = _mm512_fmadd_ps(w, cvt16(row + 16 * a), acc[a]);
  }
  for (int a = 0; a < A; ++a) _mm512_storeu_ps(out + i + 16 * a, acc[a]);
}

void wsum_rows_q8_avx512(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, float* out) {
  if (n == 0) {  // no rows (v may be null): the sum is 0, as in ref
    memset(out, 0, d * sizeof(float));
    return;
  }
  size_t i = 0;
  for (; i + 128 <= d; i += 128) wsum_block_q8<8>(p, v, scale, n, d, i, out);
  if (i + 64 <= d) {
    wsum_block_q8<4>(p, v, scale, n, d, i, out);
    i += 64;
  }
  for (; i + 16 <= d; i += 16) wsum_block_q8<1>(p, v, scale, n, d, i, out);
  if (i < d) {
    const __mmask16 m = tail16(d - i);
    __m512 acc = _mm512_setzero_ps();
    const int8_t* row = v + i;
    for (size_t j = 0; j < n; ++j, row += d) acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j] * scale[j]), cvt16(row, m), acc);
    _mm512_mask_storeu_ps(out + i, m, acc);
  }
}

// ---- softmax: softmax_avx2's bits, 16 lanes at a time ----

// exp_avx2.h's exp8 on 16 lanes: the same operations lane for lane, so the same bits.
inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.336544750553109f);  // ln(FLT_MIN)
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.6931471824645996f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-1.9046542999577679e-9f), r);
  __m512 p = _mm512_set1_ps(0.0013941108433972675f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.0083751263981533357f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.041666352896775157f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.16666415514653275f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.50000000471177577f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000000377162138f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), y);  // exp8's andnot(x < lo, y)
}

// softmax_avx2 keeps two 8-lane sums: s0 over x[i .. i + 8) and s1 over x[i + 8 .. i + 16) of each
// 16-block, then s0 over a last 8-block and s1 over the masked tail (< 8), and divides by
// hsum(s0 + s1). Here S = [s0 | s1] takes the 16-blocks, and the rest goes to the matching half.
void softmax_avx512(float* x, size_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
  if (i < n) mx = _mm512_mask_max_ps(mx, tail16(n - i), mx, _mm512_maskz_loadu_ps(tail16(n - i), x + i));
  const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));  // a max is exact in any order
  __m512 S = _mm512_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
    _mm512_storeu_ps(x + i, e);
    S = _mm512_add_ps(S, e);
  }
  __m256 s0 = _mm512_castps512_ps256(S);
  __m256 s1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(S), 1));
  if (i + 8 <= n) {
    const __m256 e = _mm512_castps512_ps256(exp16(_mm512_sub_ps(_mm512_castps256_ps512(_mm256_loadu_ps(x + i)), vmax)));
    _mm256_storeu_ps(x + i, e);
    s0 = _mm256_add_ps(s0, e);
    i += 8;
  }
  if (i < n) {
    const __mmask8 m = static_cast<__mmask8>((1u << (n - i)) - 1);
    const __m256 e = _mm512_castps512_ps256(exp16(_mm512_sub_ps(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(m, x + i)), vmax)));
    _mm256_mask_storeu_ps(x + i, m, e);
    s1 = _mm256_add_ps(s1, _mm256_maskz_mov_ps(m, e));
  }
  const __m256 v = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  const __m512 inv = _mm512_set1_ps(1.0f / _mm_cvtss_f32(h));
  i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (i < n) _mm512_mask_storeu_ps(x + i, tail16(n - i), _mm512_mul_ps(_mm512_maskz_loadu_ps(tail16(n - i), x + i), inv));
}

}  // namespace

const Kernels* avx512_kernels() {
  // A function-local static: built at the first call, after select_x86.cpp's CPU check.
  static const Kernels k = [] {
    // The avxvnni table where the CPU has AVX-VNNI too (Sapphire Rapids and later; not Ice Lake), for the
    // entries replaced there and not here; else the avx2 table.
    const Kernels* vnni = cpu_has_avxvnni() ? avxvnni_kernels() : nullptr;
    Kernels t = vnni ? *vnni : avx2_kernels();
    t.name = "avx512";
    t.quantize_rows_q8 = quantize_rows_q8_avx512;
    t.gemm_q8 = gemm_q8_avx512;
    t.gemm_q8_tile = gemm_q8_tile_avx512;
    t.gemm_q4_tile = gemm_q4_tile_avx512;
    t.softmax_f32 = softmax_avx512;
    t.scores_f32 = scores_f32_avx512;
    t.wsum_rows_q8 = wsum_rows_q8_avx512;
    t.wsum_rows_f32 = wsum_rows_f32_avx512;
    return t;
  }();
  return &k;
}

}  // namespace ember
