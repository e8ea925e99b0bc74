// The int8 GEMM tile of the "avx512" table (gemm_q8_avx512.cpp): R weight rows x T tokens per register
// tile of 512-bit vpdpbusd accumulators (AVX-512 VNNI: 64 u8 x s8 products into 16 int32 lanes per
// instruction), weights read in place. vpdpbusd multiplies unsigned by signed bytes; one operand is
// made unsigned by adding 128 (x ^ 0x80) and the sums are corrected by 128 times the other operand's sum:
//   OffsetX (prefill):    vpdpbusd(acc, x + 128, w),  minus 128 * sum_i w[r][i], once per R rows for all
//                         tokens; one xor per token and step.
//   OffsetW (decode):     vpdpbusd(acc, w + 128, x),  minus 128 * sum_i x[t][i], once per token for all
//                         rows (no pass over the weights, which decode streams from memory once).
// (AVX-512 has no vpsignb, so the sign trick of the AVX2 tables would cost a masked subtract per product
// vector; the offset forms cost one xor per loaded vector.) The intermediate sums may wrap for very long
// rows, but the true sum fits int32 (Kernels::gemm_q8's precondition in <= 133144) and wrapping
// arithmetic returns it exactly; the epilogue is the reference's fma(xs[t] * ws[o], float(acc), bias[o]),
// so the results are the reference's bits. Rows of `in` % 64 bytes end in masked loads (zeros, never
// read past a row: masked-off bytes do not fault), which add nothing: a zero byte of the signed operand
// meets the 128 of the padded unsigned one.
//
// Compile only into the AVX-512 library; everything here has internal linkage (kernels_avx2.h's rule).
#pragma once

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

// Everything is forced inline: GCC 12 otherwise inlines the helpers too late to keep the arrays of
// accumulators in registers, and stores every accumulator to the stack after each vpdpbusd.
#define EMBER_AI __attribute__((always_inline))

namespace ember {
namespace avx512_gemm {
namespace {

struct OffsetX {
  static constexpr bool kRowCorr = true;
};
struct OffsetW {
  static constexpr bool kRowCorr = false;
};

EMBER_AI inline __mmask64 tail_mask64(size_t rem) { return static_cast<__mmask64>((~0ull) >> (64 - rem)); }  // rem 1..63

template <bool Tail>
EMBER_AI inline __m512i load64(const int8_t* p, __mmask64 m) {
  if (Tail) return _mm512_maskz_loadu_epi8(m, p);
  return _mm512_loadu_si512(p);
}

EMBER_AI inline __m512i flip(__m512i v) { return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80))); }

// Software prefetch of the weights (the avx2 tile's scheme, gemm_q8_avx2_impl.h):
//   kPfNone    none (a row tile's later token tiles find its rows in L1)
//   kPfRows    the same columns of the next R rows (the next row tile's, R * in bytes ahead), into L1:
//              the first token tile of a prefill row tile
//   kPfStream  decode (1..3 tokens): a row tile's R rows are R * in contiguous bytes read once, the tiles
//              follow each other through the matrix, so the weights are one stream; at every 64-column
//              step the tile has read 64 R bytes of it, and the R cache lines kPfFar bytes ahead go to L2,
//              those kPfNear ahead to L1 (16 and 8 KiB, the avx2 tile's measured best).
// Prefetches never fault: reaching past the last row is harmless.
enum Prefetch { kPfNone, kPfRows, kPfStream };
constexpr size_t kPfFar = 16384, kPfNear = 8192;

// acc[t][r] += 64 products of x[t][k..k+64) and w[r][k..k+64) (the masked tail when Tail), and PF's
// prefetches.
template <class Dot, int R, int T, Prefetch PF, bool Tail>
EMBER_AI inline void step64(__m512i (&acc)[T][R], const int8_t* const (&wp)[R], const int8_t* const (&xp)[T], size_t k,
                   size_t in, __mmask64 m) {
  if (PF == kPfRows)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(wp[r]) + R * in + k), _MM_HINT_T0);
  if (PF == kPfStream) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(wp[0]) + R * k;  // this step's point of the tile's span
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(at + kPfFar + 64 * r), _MM_HINT_T2);
      _mm_prefetch(reinterpret_cast<const char*>(at + kPfNear + 64 * r), _MM_HINT_T0);
    }
  }
  __m512i xv[T];
  #pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    xv[t] = load64<Tail>(xp[t] + k, m);
    if (Dot::kRowCorr) xv[t] = flip(xv[t]);
  }
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    __m512i wv = load64<Tail>(wp[r] + k, m);
    if (Dot::kRowCorr) {
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], xv[t], wv);
    } else {
      wv = flip(wv);
      #pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[t][r] = _mm512_dpbusd_epi32(acc[t][r], wv, xv[t]);
    }
  }
}

// [a_lo256 + a_hi256 | b_lo256 + b_hi256]
EMBER_AI inline __m512i fold256(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
}
// From u = [A0 A1 | B0 B1], w = [C0 C1 | D0 D1] (128-bit parts): [A0 + A1, B0 + B1, C0 + C1, D0 + D1].
EMBER_AI inline __m512i fold128(__m512i u, __m512i w) {
  return _mm512_add_epi32(_mm512_shuffle_i64x2(u, w, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_i64x2(u, w, _MM_SHUFFLE(3, 1, 3, 1)));
}

// The sums of the 16 lanes of a[0..R) in lanes 0..R) (R <= 8; the other lanes are 0). Exact integer adds.
template <int R>
EMBER_AI inline __m256i hsum8(const __m512i (&a)[R]) {
  __m512i v[8];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r) v[r] = a[r];
  #pragma GCC unroll 16
  for (int r = R; r < 8; ++r) v[r] = _mm512_setzero_si512();
  const __m512i p = fold128(fold256(v[0], v[1]), fold256(v[2], v[3]));  // 128-bit part k: 4 partials of v[k]
  __m512i s;
  if (R > 4) {
    const __m512i q = fold128(fold256(v[4], v[5]), fold256(v[6], v[7]));
    s = _mm512_add_epi32(_mm512_unpacklo_epi64(p, q), _mm512_unpackhi_epi64(p, q));  // [p0+p2, p1+p3, q0+q2, q1+q3]
  } else {
    s = _mm512_add_epi32(p, _mm512_unpackhi_epi64(p, p));  // [p0+p2, p1+p3, ...]
  }
  s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_CDAB));  // lane 4k: v[k]'s sum; lane 4k + 2: v[4 + k]'s
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m256i out = _mm512_castsi512_si256(_mm512_permutexvar_epi32(idx, s));
  if (R == 8) return out;
  return _mm256_maskz_mov_epi32(static_cast<__mmask8>((1u << R) - 1), out);
}

// Reference epilogue for R rows of token t: y = fma(xs[t] * ws[o + r], float(sum), bias[o + r]).
template <int R>
EMBER_AI inline void store_rows(const GemmQ8Args& a, size_t t, size_t o, __m256i s) {
  float* y = a.y + t * a.out + o;
  const __m256 xs = _mm256_set1_ps(a.xs[t]);
  if (R == 8) {
    const __m256 d = _mm256_mul_ps(xs, _mm256_loadu_ps(a.ws + o));
    const __m256 b = a.bias ? _mm256_loadu_ps(a.bias + o) : _mm256_setzero_ps();
    _mm256_storeu_ps(y, _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), b));
  } else {
    const __mmask8 m = static_cast<__mmask8>((1u << R) - 1);
    const __m256 d = _mm256_mul_ps(xs, _mm256_maskz_loadu_ps(m, a.ws + o));
    const __m256 b = a.bias ? _mm256_maskz_loadu_ps(m, a.bias + o) : _mm256_setzero_ps();
    _mm256_mask_storeu_ps(y, m, _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), b));
  }
}

// y[t .. t + T)[o .. o + R): the full dot products over `in`, then the epilogue. The corrections:
// rcorr (lanes 0..R) per row (OffsetX), tcorr[i] per token (OffsetW).
template <class Dot, int R, int T, Prefetch PF>
inline void tile(const GemmQ8Args& a, size_t t, size_t o, __m256i rcorr, const int32_t* tcorr) {
  const size_t in = a.in;
  const int8_t* wp[R];
  const int8_t* xp[T];
  #pragma GCC unroll 16
  for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * in;
  #pragma GCC unroll 16
  for (int i = 0; i < T; ++i) xp[i] = a.xq + (t + i) * in;
  __m512i acc[T][R];
  #pragma GCC unroll 16
  for (int i = 0; i < T; ++i)
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
  // One loop, every load masked (all ones but in the last step when in % 64 != 0): with a separate tail
  // step after the loop GCC 12 kept the accumulators on the stack, a store after every vpdpbusd.
  for (size_t k = 0; k < in; k += 64) {
    const __mmask64 m = k + 64 <= in ? ~__mmask64{0} : tail_mask64(in - k);
    step64<Dot, R, T, PF, true>(acc, wp, xp, k, in, m);
  }
  #pragma GCC unroll 16
  for (int i = 0; i < T; ++i) {
    __m256i s = hsum8<R>(acc[i]);
    if (Dot::kRowCorr)
      s = _mm256_sub_epi32(s, rcorr);
    else
      s = _mm256_sub_epi32(s, _mm256_set1_epi32(tcorr[i]));
    store_rows<R>(a, t + i, o, s);
  }
}

// 128 * sum_i p[j][i] for j < N in lanes 0..N (the rest 0): vpdpbusd of bytes 1 with p, wrapping int32
// arithmetic like the sums it corrects.
template <int N>
EMBER_AI inline __m256i offset_sums(const int8_t* const (&p)[N], size_t in) {
  const __m512i one = _mm512_set1_epi8(1);
  __m512i acc[N];
  #pragma GCC unroll 16
  for (int j = 0; j < N; ++j) acc[j] = _mm512_setzero_si512();
  size_t k = 0;
  for (; k + 64 <= in; k += 64)
    #pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], one, _mm512_loadu_si512(p[j] + k));
  if (k < in) {
    const __mmask64 m = tail_mask64(in - k);
    #pragma GCC unroll 16
    for (int j = 0; j < N; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], one, _mm512_maskz_loadu_epi8(m, p[j] + k));
  }
  return _mm256_slli_epi32(hsum8<N>(acc), 7);
}

// Tokens [t0, t1) of rows [o, o + R) in token tiles of T (then one tile of the remainder): the first
// tile brings the rows into L1 (and prefetches the next ones), the others reuse them.
template <class Dot, int R, int T, int Rem>
inline void tail_tokens(const GemmQ8Args& a, size_t t, size_t o, __m256i rc, const int32_t* tc, bool pf) {
  if constexpr (Rem > 0) {
    if (pf)
      tile<Dot, R, Rem, Dot::kRowCorr ? kPfRows : kPfStream>(a, t, o, rc, tc);
    else
      tile<Dot, R, Rem, kPfNone>(a, t, o, rc, tc);
  }
}

template <class Dot, int R, int T>
inline void rows(const GemmQ8Args& a, size_t t0, size_t t1, size_t o, const int32_t* tcorr) {
  __m256i rc = _mm256_setzero_si256();
  if constexpr (Dot::kRowCorr) {
    const int8_t* wp[R];
    #pragma GCC unroll 16
    for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * a.in;
    rc = offset_sums<R>(wp, a.in);
  }
  size_t t = t0;
  bool first = true;
  for (; t + T <= t1; t += T) {
    if (first)  // prefill (OffsetX): the next rows; decode (OffsetW, one token tile): the stream
      tile<Dot, R, T, Dot::kRowCorr ? kPfRows : kPfStream>(a, t, o, rc, tcorr + (t - t0));
    else
      tile<Dot, R, T, kPfNone>(a, t, o, rc, tcorr + (t - t0));
    first = false;
  }
  const size_t rem = t1 - t;
  const int32_t* tc = tcorr + (t - t0);
  switch (rem) {
    case 0: break;
    case 1: tail_tokens<Dot, R, T, 1>(a, t, o, rc, tc, first); break;
    case 2: if constexpr (T > 2) tail_tokens<Dot, R, T, 2>(a, t, o, rc, tc, first); break;
    case 3: if constexpr (T > 3) tail_tokens<Dot, R, T, 3>(a, t, o, rc, tc, first); break;
    case 4: if constexpr (T > 4) tail_tokens<Dot, R, T, 4>(a, t, o, rc, tc, first); break;
    case 5: if constexpr (T > 5) tail_tokens<Dot, R, T, 5>(a, t, o, rc, tc, first); break;
    default: break;
  }
}

// Tokens per chunk: the per-token corrections of OffsetW live on the stack.
constexpr size_t kChunkT = 64;

// The tile tokens [t0, t1) x output channels [o0, o1) with R x T register tiles (R = 8 or 4, T <= 6).
template <class Dot, int R, int T>
inline void gemm_tile(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  static_assert(R == 8 || R == 4, "row tile");
  static_assert(T >= 1 && T <= 6, "token tile");
  int32_t tcorr[kChunkT];
  for (size_t c0 = t0; c0 < t1; c0 += kChunkT) {
    const size_t c1 = c0 + kChunkT < t1 ? c0 + kChunkT : t1;
    if constexpr (!Dot::kRowCorr) {
      size_t t = c0;
      for (; t + 4 <= c1; t += 4) {
        const int8_t* xp[4] = {a.xq + t * a.in, a.xq + (t + 1) * a.in, a.xq + (t + 2) * a.in, a.xq + (t + 3) * a.in};
        _mm_storeu_si128(reinterpret_cast<__m128i*>(tcorr + (t - c0)), _mm256_castsi256_si128(offset_sums<4>(xp, a.in)));
      }
      for (; t < c1; ++t) {
        const int8_t* xp[1] = {a.xq + t * a.in};
        tcorr[t - c0] = _mm256_cvtsi256_si32(offset_sums<1>(xp, a.in));
      }
    }
    size_t o = o0;
    for (; o + R <= o1; o += R) rows<Dot, R, T>(a, c0, c1, o, tcorr);
    if (R == 8 && o + 4 <= o1) {
      rows<Dot, 4, T>(a, c0, c1, o, tcorr);
      o += 4;
    }
    switch (o1 - o) {
      case 3: rows<Dot, 3, T>(a, c0, c1, o, tcorr); break;
      case 2: rows<Dot, 2, T>(a, c0, c1, o, tcorr); break;
      case 1: rows<Dot, 1, T>(a, c0, c1, o, tcorr); break;
      default: break;
    }
  }
}

}  // namespace
}  // namespace avx512_gemm
}  // namespace ember

#undef EMBER_AI
