// Int8 kernels for AVX2: per-token activation quantization and the int8 x int8 -> int32 GEMM
// (qs8-gemm-4x2-avx2: 4 weight rows x 2 tokens per register tile), weights read in place.
//
// The dot product (the Q8_0 idea of llama.cpp's ggml_vec_dot_q8_0_q8_0, written for this layout):
// vpmaddubsw multiplies unsigned by signed bytes, so the sign of x moves onto w:
//   maddubs(|x|, sign(w, x)) = |x_i| * (w_i * sgn x_i) + |x_j| * (w_j * sgn x_j) = x_i w_i + x_j w_j.
// It saturates to int16, which never happens here: |x|, |w| <= 127, so each pair sum is at most
// 2 * 127 * 127 = 32258 < 32767. That bound, and sign()'s negation, need values in [-127, 127]
// (-(-128) wraps to -128); quantize_rows_q8 never produces -128 and weights must not contain it.
// vpmaddwd with ones then widens the int16 pairs into int32 lanes, which accumulate exactly.
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

// Output-channel rows x tokens per register tile: 8 int32 accumulators + 4 x registers + w + temps
// fit the 16 ymm registers. Each loaded w vector feeds kTileT tokens, each x vector kTileR rows.
constexpr int kTileR = 4;
constexpr int kTileT = 2;

// acc[t][r] += 32 products of x[t][k..k+32) and w[r][k..k+32). With PF, also prefetch the same columns
// of the next R rows (the next tile's, R * in bytes ahead in each row stream). Batch-1 decode streams the
// weights from DRAM; on the development machine (Sapphire Rapids VM) this took one thread from ~9.4 to
// ~12.5 GB/s, the rate of a plain loop of 32-byte loads. Prefetches never fault, so running past the last
// row is harmless.
template <int R, int T, bool PF>
inline void step32(__m256i (&acc)[T][R], const int8_t* const (&wp)[R], const int8_t* const (&xp)[T], size_t k,
                   size_t in) {
  const __m256i ones = _mm256_set1_epi16(1);
  if (PF)
    for (int r = 0; r < R; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(wp[r]) + R * in + k), _MM_HINT_T0);
  __m256i xv[T], ax[T];
  for (int t = 0; t < T; ++t) {
    xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[t] + k));
    ax[t] = _mm256_abs_epi8(xv[t]);
  }
  for (int r = 0; r < R; ++r) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[r] + k));
    for (int t = 0; t < T; ++t) {
      const __m256i p16 = _mm256_maddubs_epi16(ax[t], _mm256_sign_epi8(wv, xv[t]));
      acc[t][r] = _mm256_add_epi32(acc[t][r], _mm256_madd_epi16(p16, ones));
    }
  }
}

// Sums of the 8 lanes of a[0..R) in lanes 0..R) (R <= 4, the rest zero).
template <int R>
inline __m128i hsum4(const __m256i (&a)[R]) {
  __m256i v[4];
  for (int r = 0; r < R; ++r) v[r] = a[r];
  for (int r = R; r < 4; ++r) v[r] = _mm256_setzero_si256();
  const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

// y[t][o + r] for r < R, t < T: the full dot products over `in`, then the epilogue
// fma(xs[t] * ws[o], float(acc), bias[o]) exactly as the reference evaluates it.
template <int R, int T, bool PF>
inline void tile(const GemmQ8Args& a, size_t t, size_t o) {
  const size_t in = a.in;
  const int8_t* wp[R];
  const int8_t* xp[T];
  for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * in;
  for (int i = 0; i < T; ++i) xp[i] = a.xq + (t + i) * in;
  __m256i acc[T][R];
  for (int i = 0; i < T; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_si256();
  size_t k = 0;
  for (; k + 32 <= in; k += 32) step32<R, T, PF>(acc, wp, xp, k, in);
  if (k < in) {
    // Tail of fewer than 32 columns through zero-padded copies (reading past a row could leave the
    // mapping on the last one). Padding contributes sign(w, 0) = 0.
    const size_t rem = in - k;
    alignas(32) int8_t wb[R][32];
    alignas(32) int8_t xb[T][32];
    const int8_t* wq[R];
    const int8_t* xq[T];
    for (int r = 0; r < R; ++r) {
      memset(wb[r], 0, 32);
      memcpy(wb[r], wp[r] + k, rem);
      wq[r] = wb[r];
    }
    for (int i = 0; i < T; ++i) {
      memset(xb[i], 0, 32);
      memcpy(xb[i], xp[i] + k, rem);
      xq[i] = xb[i];
    }
    step32<R, T, false>(acc, wq, xq, 0, 0);
  }
  for (int i = 0; i < T; ++i) {
    const __m128i s = hsum4<R>(acc[i]);
    float* y = a.y + (t + i) * a.out + o;
    if (R == 4) {
      const __m128 d = _mm_mul_ps(_mm_set1_ps(a.xs[t + i]), _mm_loadu_ps(a.ws + o));
      const __m128 b = a.bias ? _mm_loadu_ps(a.bias + o) : _mm_setzero_ps();
      _mm_storeu_ps(y, _mm_fmadd_ps(d, _mm_cvtepi32_ps(s), b));
    } else {
      alignas(16) int32_t v[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(v), s);
      for (int r = 0; r < R; ++r)
        y[r] = fmaf(a.xs[t + i] * a.ws[o + r], static_cast<float>(v[r]), a.bias ? a.bias[o + r] : 0.0f);
    }
  }
}

// Rows [o, o + R) for tokens [t0, t1): the first token tile brings the rows into L1 (and prefetches the
// next ones), the others reuse them.
template <int R>
inline void rows(const GemmQ8Args& a, size_t t0, size_t t1, size_t o) {
  size_t t = t0;
  if (t + kTileT <= t1) {
    tile<R, kTileT, true>(a, t, o);
    t += kTileT;
  } else if (t < t1) {
    tile<R, 1, true>(a, t, o);
    ++t;
  }
  for (; t + kTileT <= t1; t += kTileT) tile<R, kTileT, false>(a, t, o);
  for (; t < t1; ++t) tile<R, 1, false>(a, t, o);
}

}  // namespace

void gemm_q8_tile_avx2(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  size_t o = o0;
  for (; o + kTileR <= o1; o += kTileR) rows<kTileR>(a, t0, t1, o);
  switch (o1 - o) {
    case 3: rows<3>(a, t0, t1, o); break;
    case 2: rows<2>(a, t0, t1, o); break;
    case 1: rows<1>(a, t0, t1, o); break;
    default: break;
  }
}

void gemm_q8_avx2(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                  const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_avx2(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

namespace {

const int32_t kTailMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
inline __m256i tail_mask(size_t n) {  // lanes [0, n) set, n in 1..7
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailMask + 8 - n));
}

// 8 int32 (already in [-127, 127]) -> 8 int8 in the low 8 bytes.
inline __m128i pack8(__m256i v) {
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v, v), _mm256_setzero_si256());
  return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// round-half-even(x / s) clamped to [-127, 127]. cvtps2dq rounds in the current (default: nearest-
// even) mode, as nearbyint does in the reference; the division is the same IEEE operation.
inline __m256i quant8(__m256 x, __m256 s) {
  const __m256i q = _mm256_cvtps_epi32(_mm256_div_ps(x, s));
  return _mm256_max_epi32(_mm256_min_epi32(q, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}

}  // namespace

void quantize_rows_q8_avx2(const float* x, size_t rows, size_t n, int8_t* q, float* scale) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (size_t r = 0; r < rows; ++r, x += n, q += n) {
    __m256 m0 = _mm256_setzero_ps(), m1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      m0 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), m0);
      m1 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i + 8), abs_mask), m1);
    }
    for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), m0);
    if (i < n) m1 = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(x + i, tail_mask(n - i)), abs_mask), m1);
    __m256 m = _mm256_max_ps(m0, m1);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float s = _mm_cvtss_f32(h) / 127.0f;
    scale[r] = s;
    if (s == 0.0f) {
      memset(q, 0, n);
      continue;
    }
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    i = 0;
    for (; i + 32 <= n; i += 32) {
      const __m256i a = quant8(_mm256_loadu_ps(x + i), vs), b = quant8(_mm256_loadu_ps(x + i + 8), vs);
      const __m256i c = quant8(_mm256_loadu_ps(x + i + 16), vs), d = quant8(_mm256_loadu_ps(x + i + 24), vs);
      // packs work within 128-bit lanes: [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7], then un-interleave.
      const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), _mm256_permutevar8x32_epi32(p, perm));
    }
    for (; i + 8 <= n; i += 8) _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), pack8(quant8(_mm256_loadu_ps(x + i), vs)));
    if (i < n) {
      alignas(16) int8_t tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), pack8(quant8(_mm256_maskload_ps(x + i, tail_mask(n - i)), vs)));
      memcpy(q + i, tmp, n - i);
    }
  }
}

}  // namespace ember
