// f32 kernels for AVX2 + FMA, and the "avx2" table. Tails (n % 8) go through masked loads and stores,
// so every element takes the same arithmetic path.
//
// Approximations (max errors measured over all relevant floats by tests/kernels/test_kernels.cpp):
//   exp: exp_avx2.h (relative error a few ulp, < 1e-6, for x <= 88; 0 below ln(FLT_MIN)).
//   gelu_tanh: x * sigmoid(2u) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3), identical to
//        0.5 x (1 + tanh u) without the cancellation of 1 + tanh u for negative x.
//   gelu_erf: x * Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2). With z = |x| / sqrt 2 and t = 1 / (1 + 0.4 z),
//        erfc(z) = exp(-z^2) g(t), g a degree-8 Chebyshev fit on z in [0, 6] (fit error 5.1e-9 absolute,
//        g >= 0.09). Phi = h or 1 - h with h = 0.5 erfc(z): both tails without cancellation.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/avx2/exp_avx2.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

const int32_t kTailMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i tail_mask(size_t n) {  // lanes [0, n) set, n in 1..7
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMask + 8 - n));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline double hsum(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

using avx2::exp8;

inline __m256 abs_mask() { return _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)); }

// tiny(): squares of |x| < 1e-19 underflow, and every underflowing multiply costs a ~100-cycle microcode
// assist on Intel (a 4x slowdown of a whole GELU row in the benchmark). Where the square is used, |x| is
// clamped to >= 1e-15: the square then only meets 1 in a sum, so results are unchanged.
inline __m256 gelu_tanh8(__m256 x) {
  // -2u = x * (c1 + c3 x^2)
  const __m256 c1 = _mm256_set1_ps(-2.0f * 0.7978845608028654f);
  const __m256 c3 = _mm256_set1_ps(-2.0f * 0.7978845608028654f * 0.044715f);
  const __m256 ax = _mm256_max_ps(_mm256_and_ps(x, abs_mask()), _mm256_set1_ps(1e-15f));  // see tiny()
  const __m256 m2u = _mm256_mul_ps(x, _mm256_fmadd_ps(c3, _mm256_mul_ps(ax, ax), c1));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(m2u)));
}

inline __m256 gelu_erf8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 z = _mm256_max_ps(_mm256_mul_ps(_mm256_and_ps(x, abs_mask()), _mm256_set1_ps(0.70710678118654752f)),
                                 _mm256_set1_ps(1e-15f));  // see tiny()
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.4f), z, one));
  __m256 g = _mm256_set1_ps(0.08721732255593417f);
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(-0.46191211924699585f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.83503478056580809f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(-0.56247781685480878f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.55289818431702599f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.070870461692059335f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.25642421972495539f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.22172319847593084f));
  g = _mm256_fmadd_ps(g, t, _mm256_set1_ps(0.00022177390184563554f));
  // h = 0.5 erfc(z); exp(-z^2) is 0 beyond z ~ 9.3, where g (extrapolated) stays finite.
  const __m256 h = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), g), exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z)));
  const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, h), h, x);  // sign bit of x set: h
  return _mm256_mul_ps(x, phi);
}

inline __m256 relu8(__m256 x) { return _mm256_max_ps(x, _mm256_setzero_ps()); }  // x > 0 ? x : 0, as ref

// Elementwise ops as functors (a function-pointer template argument of type __m256(*)(__m256) would
// draw -Wignored-attributes).
struct GeluTanh { __m256 operator()(__m256 x) const { return gelu_tanh8(x); } };
struct GeluErf { __m256 operator()(__m256 x) const { return gelu_erf8(x); } };
struct Relu { __m256 operator()(__m256 x) const { return relu8(x); } };

template <class F>
inline void map_inplace(float* x, size_t n) {
  const F f;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, f(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, f(_mm256_maskload_ps(x + i, m)));
  }
}

void gelu_tanh_avx2(float* x, size_t n) { map_inplace<GeluTanh>(x, n); }
void gelu_erf_avx2(float* x, size_t n) { map_inplace<GeluErf>(x, n); }
void relu_avx2(float* x, size_t n) { map_inplace<Relu>(x, n); }

void softmax_avx2(float* x, size_t n) {
  __m256 mx = _mm256_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + i));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(mx, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m)));
  }
  const __m256 vmax = _mm256_set1_ps(hmax(mx));
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmax));
    _mm256_storeu_ps(x + i, e0);
    _mm256_storeu_ps(x + i + 8, e1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
    _mm256_storeu_ps(x + i, e);
    s0 = _mm256_add_ps(s0, e);
  }
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, m), vmax)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(x + i, m, e);
    s1 = _mm256_add_ps(s1, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum(_mm256_add_ps(s0, s1)));
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv));
  }
}

// dot_avx2 before its final horizontal sum: (s0 + s1) + (s2 + s3) of the four partial sums.
inline __m256 dot_partials(const float* a, const float* b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
}

float dot_avx2(const float* a, const float* b, size_t n) { return hsum(dot_partials(a, b, n)); }

void axpy_avx2(float a, const float* x, float* y, size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_fmadd_ps(va, _mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

void add_avx2(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, _mm256_add_ps(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m)));
  }
}

// Mean and variance accumulate in double like the reference (robust when |mean| >> std); only the
// final affine map is float: y = fma((x - m) * rstd, g, b).
void layernorm_avx2(const float* x, const float* g, const float* b, float* y, size_t n, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double sum = hsum(_mm256_add_pd(s0, s1));
  for (size_t j = i; j < n; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(n);
  const __m256d vm = _mm256_set1_pd(mean);
  s0 = _mm256_setzero_pd();
  s1 = _mm256_setzero_pd();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), vm);
    const __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), vm);
    s0 = _mm256_fmadd_pd(d0, d0, s0);
    s1 = _mm256_fmadd_pd(d1, d1, s1);
  }
  double var = hsum(_mm256_add_pd(s0, s1));
  for (size_t j = i; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  var /= static_cast<double>(n);
  const __m256 m = _mm256_set1_ps(static_cast<float>(mean));
  const __m256 rstd = _mm256_set1_ps(static_cast<float>(1.0 / sqrt(var + eps)));
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), rstd);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
  }
  if (i < n) {
    const __m256i k = tail_mask(n - i);
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, k), m), rstd);
    _mm256_maskstore_ps(y + i, k, _mm256_fmadd_ps(v, _mm256_maskload_ps(g + i, k), _mm256_maskload_ps(b + i, k)));
  }
}

// 8 int8 at p -> 8 floats (exact).
inline __m256 cvt8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Columns [i, i + 8 * A) of the weighted sum, A accumulators kept in registers over all n rows.
// noinline (here and in wsum_block_f32): inlined into the row-sum functions, GCC 12 kept the 4-vector
// block's accumulators on the stack, a store and a reload per row (d = 32: 307 -> 177 ns for 132 rows
// of wsum_rows_q8, 344 -> 144 ns for wsum_rows_f32).
template <int A>
__attribute__((noinline)) void wsum_block(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, size_t i, float* out) {
  __m256 acc[A];
  for (int a = 0; a < A; ++a) acc[a] = _mm256_setzero_ps();
  const int8_t* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const __m256 w = _mm256_set1_ps(p[j] * scale[j]);
    for (int a = 0; a < A; ++a) acc[a] = _mm256_fmadd_ps(w, cvt8(row + 8 * a), acc[a]);
  }
  for (int a = 0; a < A; ++a) _mm256_storeu_ps(out + i + 8 * a, acc[a]);
}

// f32-q8-wsum-avx2: 64, then 32, then 8 columns per pass over the rows; a tail of d % 8 columns through
// zero-padded 8-byte copies (never reading past a row) and a masked store.
void wsum_rows_q8_avx2(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, float* out) {
  if (n == 0) {  // no rows (v may be null: no pointer arithmetic on it, UB): the sum is 0, as in ref
    memset(out, 0, d * sizeof(float));
    return;
  }
  size_t i = 0;
  for (; i + 64 <= d; i += 64) wsum_block<8>(p, v, scale, n, d, i, out);
  if (i + 32 <= d) {
    wsum_block<4>(p, v, scale, n, d, i, out);
    i += 32;
  }
  for (; i + 8 <= d; i += 8) wsum_block<1>(p, v, scale, n, d, i, out);
  if (i < d) {
    const size_t rem = d - i;
    __m256 acc = _mm256_setzero_ps();
    const int8_t* row = v + i;
    for (size_t j = 0; j < n; ++j, row += d) {
      int8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      memcpy(b, row, rem);
      acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j] * scale[j]), cvt8(b), acc);
    }
    _mm256_maskstore_ps(out + i, tail_mask(rem), acc);
  }
}

// Two rows' partials (a, b) -> per 128-bit half [w0, w2, w1, w3] of w = lo + hi, the first step of hsum.
inline __m256 fold_pair(__m256 a, __m256 b) {
  const __m256 w = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  return _mm256_permute_ps(w, 0xD8);
}

// dot_partials(q, row, 32 * NB) with q's 4 * NB vectors held in registers (loaded once per call of
// scores_f32 instead of once per row): the same fmas in the same order, so the same bits.
template <int NB>
struct QInRegisters {
  __m256 q[4 * NB];
  explicit QInRegisters(const float* qp) {
    for (int i = 0; i < 4 * NB; ++i) q[i] = _mm256_loadu_ps(qp + 8 * i);
  }
  __m256 operator()(const float* b) const {
    __m256 s[4];
    for (int i = 0; i < 4; ++i) s[i] = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(b + 8 * i), _mm256_setzero_ps());
    for (int blk = 1; blk < NB; ++blk)
      for (int i = 0; i < 4; ++i) s[i] = _mm256_fmadd_ps(q[4 * blk + i], _mm256_loadu_ps(b + 32 * blk + 8 * i), s[i]);
    return _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
  }
};

// Any d: dot_partials reading q from memory.
struct QInMemory {
  const float* q;
  size_t d;
  __m256 operator()(const float* b) const { return dot_partials(q, b, d); }
};

// Eight rows at a time: their dot_partials, then the eight horizontal sums at once in exactly hsum's
// order, lo + hi, then (w0 + w2) + (w1 + w3), so every score has dot_avx2's bits (= hsum(dot_partials)).
template <class Partials>
inline void scores_rows(const Partials& dot, const float* k, size_t n, size_t d, float scale, float* s) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const float* r = k + j * d;
    const __m256 p01 = fold_pair(dot(r), dot(r + d));
    const __m256 p23 = fold_pair(dot(r + 2 * d), dot(r + 3 * d));
    const __m256 p45 = fold_pair(dot(r + 4 * d), dot(r + 5 * d));
    const __m256 p67 = fold_pair(dot(r + 6 * d), dot(r + 7 * d));
    // hadd: [r0, r2, r4, r6 | r1, r3, r5, r7] after two rounds; the permute puts rows in order.
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(p01, p23), _mm256_hadd_ps(p45, p67));
    _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_permutevar8x32_ps(h, order), vs));
  }
  for (; j < n; ++j) s[j] = hsum(dot(k + j * d)) * scale;
}

// Head sizes 32 and 64 (GPT-2's, and most small models') keep the query in registers.
void scores_f32_avx2(const float* q, const float* k, size_t n, size_t d, float scale, float* s) {
  if (d == 64)
    scores_rows(QInRegisters<2>(q), k, n, d, scale, s);
  else if (d == 32)
    scores_rows(QInRegisters<1>(q), k, n, d, scale, s);
  else
    scores_rows(QInMemory{q, d}, k, n, d, scale, s);
}

template <int A>
__attribute__((noinline)) void wsum_block_f32(const float* p, const float* v, size_t n, size_t d, size_t i, float* out) {
  __m256 acc[A];
  for (int a = 0; a < A; ++a) acc[a] = _mm256_loadu_ps(out + i + 8 * a);
  const float* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const __m256 w = _mm256_set1_ps(p[j]);
    for (int a = 0; a < A; ++a) acc[a] = _mm256_fmadd_ps(w, _mm256_loadu_ps(row + 8 * a), acc[a]);
  }
  for (int a = 0; a < A; ++a) _mm256_storeu_ps(out + i + 8 * a, acc[a]);
}

// f32-wsum-avx2: as wsum_rows_q8_avx2, the accumulators (loaded from out) stay in registers over all
// rows (64, 32, then 8 columns per pass); the d % 8 tail through masked loads and a masked store.
void wsum_rows_f32_avx2(const float* p, const float* v, size_t n, size_t d, float* out) {
  if (n == 0) return;  // v may be null
  size_t i = 0;
  for (; i + 64 <= d; i += 64) wsum_block_f32<8>(p, v, n, d, i, out);
  if (i + 32 <= d) {
    wsum_block_f32<4>(p, v, n, d, i, out);
    i += 32;
  }
  for (; i + 8 <= d; i += 8) wsum_block_f32<1>(p, v, n, d, i, out);
  if (i < d) {
    const __m256i m = tail_mask(d - i);
    __m256 acc = _mm256_maskload_ps(out + i, m);
    const float* row = v + i;
    for (size_t j = 0; j < n; ++j, row += d) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_maskload_ps(row, m), acc);
    _mm256_maskstore_ps(out + i, m, acc);
  }
}

// GELU backward: the smooth factor is recovered from the forward's output, s = out / inp (tanh-GELU:
// out = x sigmoid(2u); erf-GELU: out = x Phi(x)), which saves a tanh / erf per element; near x = 0, where
// the quotient loses accuracy, s takes its limit 1/2. Tails go through the reference.
template <bool kErf>
void gelu_backward_avx2(float* dinp, const float* dout, const float* inp, const float* out, size_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2Pi = 0.3989422804014327f;
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), tiny = _mm256_set1_ps(1e-6f);
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(inp + i);
    const __m256 small = _mm256_cmp_ps(_mm256_and_ps(x, absmask), tiny, _CMP_LT_OQ);
    const __m256 s = _mm256_blendv_ps(_mm256_div_ps(_mm256_loadu_ps(out + i), x), half, small);
    __m256 d;
    if (kErf) {  // Phi(x) + x phi(x)
      const __m256 phi = _mm256_mul_ps(_mm256_set1_ps(kInvSqrt2Pi), avx2::exp8(_mm256_mul_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(-0.5f))));
      d = _mm256_fmadd_ps(x, phi, s);
    } else {  // s + x s (1 - s) 2 k (1 + 3 * 0.044715 x^2)
      const __m256 du = _mm256_fmadd_ps(_mm256_set1_ps(2.0f * kSqrt2OverPi * 3.0f * 0.044715f), _mm256_mul_ps(x, x),
                                        _mm256_set1_ps(2.0f * kSqrt2OverPi));
      d = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(x, s), _mm256_sub_ps(one, s)), du, s);
    }
    _mm256_storeu_ps(dinp + i, _mm256_mul_ps(d, _mm256_loadu_ps(dout + i)));
  }
  const Kernels& R = reference_kernels();
  if (i < n) (kErf ? R.gelu_erf_backward_f32 : R.gelu_tanh_backward_f32)(dinp + i, dout + i, inp + i, out + i, n - i);
}
void gelu_tanh_backward_avx2(float* dinp, const float* dout, const float* inp, const float* out, size_t n) {
  gelu_backward_avx2<false>(dinp, dout, inp, out, n);
}
void gelu_erf_backward_avx2(float* dinp, const float* dout, const float* inp, const float* out, size_t n) {
  gelu_backward_avx2<true>(dinp, dout, inp, out, n);
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels k = {"avx2",       layernorm_avx2, gelu_tanh_avx2,        gelu_erf_avx2, relu_avx2,
                            softmax_avx2, dot_avx2,       axpy_avx2,             add_avx2,      quantize_rows_q8_avx2,
                            gemm_q8_avx2, gemm_q8_tile_avx2, wsum_rows_q8_avx2,
                            scores_f32_avx2, wsum_rows_f32_avx2,
                            gelu_tanh_backward_avx2, gelu_erf_backward_avx2, reference_kernels().relu_backward_f32,
                            // Training's layer norm and softmax backward: the reference's until a SIMD version is measured.
                            reference_kernels().layernorm_backward_f32, reference_kernels().softmax_backward_f32,
                            gemm_f32_tile_avx2, gemm_q4_tile_avx2};
  return k;
}

}  // namespace ember
