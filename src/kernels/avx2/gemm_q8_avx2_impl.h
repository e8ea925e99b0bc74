// The int8 GEMM tile of the x86 tables (qs8-gemm-4xT: 4 weight rows x Dot::kTileT tokens per register
// tile, weights read in place), shared by gemm_q8_avx2.cpp and gemm_q8_avxvnni.cpp. The instructions multiply
// unsigned by signed bytes, so the Dot policy first turns each activation vector x into an unsigned
// operand xop(x) and then adds 32 products into 8 int32 lanes with add(acc, xop(x), x, w):
//   avx2 (sign trick):   xop = |x|, add = vpmaddwd(vpmaddubsw(|x|, sign(w, x)), 1) + acc
//   avxvnni (offset):    xop = x + 128 (x ^ 0x80), add = vpdpbusd(acc, x + 128, w), and the tile then
//                        subtracts 128 * sum_i w[r][i] (kOffsetX: computed once per 4 rows, for all tokens)
//   avxvnni, few tokens: the sign trick on vpdpbusd (no row-sum pass over the weights)
// The sign trick is the Q8_0 idea of llama.cpp's ggml_vec_dot_q8_0_q8_0: |x_i| * (w_i * sgn x_i) = x_i w_i.
// vpmaddubsw saturates its int16 pair sums, which never happens here: |x|, |w| <= 127, so a pair sum is
// at most 2 * 127 * 127 = 32258 < 32767 (vpdpbusd has no int16 stage). That bound, and sign()'s
// negation, need values in [-127, 127] (-(-128) wraps to -128); quantize_rows_q8 never produces -128 and
// weights must not contain it. The sums are exact int32 (the offset form's intermediate sums may wrap
// for very long rows, but its result, the true sum, fits int32 as Kernels::gemm_q8 requires, and wrapping
// arithmetic then returns it exactly), so every variant returns the reference's bits.
// Include it from those two files only: everything here has internal linkage, so the AVX-VNNI
// instantiations stay inside their library (the rule of kernels_avx2.h).
#pragma once

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

namespace ember {
namespace {

// Output-channel rows x tokens (Dot::kTileT) per register tile, within the 16 ymm registers: the sign
// trick keeps x and xop(x) per token, so 4 x 2 (8 accumulators + 4 + w + temps); the offset form only
// xop(x), so 4 x 3 (12 accumulators + 3 + w). Each loaded w vector feeds kTileT tokens, each x vector
// kTileR rows.
constexpr int kTileR = 4;

// Software prefetch of the weights ahead of the tile that reads them (the PF argument of step32, tile):
//   kPfNone    none (the rows are in L1 already: a row group's later token tiles)
//   kPfRows    the same columns of the next R rows (the next tile's, R * in bytes ahead in each row
//              stream), into L1: the first token tile of a prefill row group
//   kPfStream  batches below kStreamBatch (decode): the R rows of a tile are R * in contiguous bytes, read
//              once, and the tiles follow each other through the matrix, so the weights are one stream.
//              At every 64 columns (k % 64 == 0) the tile has read 64 R bytes of it; with `at` = the
//              tile's first row + R * k, prefetch the R cache lines at + kPfFar + 64 r into L2
//              (_MM_HINT_T2) and the R lines at + kPfNear + 64 r into L1 (_MM_HINT_T0), r < R: each line of
//              the stream is asked for twice, 16 KiB and then 8 KiB before the tile reaches it, one
//              prefetch instruction per 32 weight bytes.
// Measured on the development machine (Emerald Rapids VM, 1 thread, the decode's 49 GEMVs over GPT-2
// small's 124.6 MB of int8 weights, this tile's code in variants alternating in one process, paired
// ratios to kPfRows, 12 runs of 10 rounds while other jobs loaded the machine unevenly, 2026-12-06):
// kPfStream at 16 KiB (L2) / 8 KiB (L1) median 1.13x (1.00-1.06x in quiet runs, where kPfRows already
// reads 23-24 GB/s, the L3's rate for this working set; up to 1.67x under load); 16/4 KiB 1.08x,
// 24/4 1.08x, 32/4 1.09x, 8/2 1.06x, 12/3 1.04x. Prefetches never fault: reaching past the last row is
// harmless. docs/performance.md#roofline has the whole measurement.
enum Prefetch { kPfNone, kPfRows, kPfStream };
constexpr size_t kStreamBatch = 4;
constexpr size_t kPfFar = 16384, kPfNear = 8192;

// acc[t][r] += 32 products of x[t][k..k+32) and w[r][k..k+32): Dot::add(acc, Dot::xop(x), x, w), with
// xop computed once per token and step, and the prefetches of PF.
template <class Dot, int R, int T, Prefetch PF>
inline void step32(__m256i (&acc)[T][R], const int8_t* const (&wp)[R], const int8_t* const (&xp)[T], size_t k,
                   size_t in) {
  if (PF == kPfRows)
    for (int r = 0; r < R; ++r)
      _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(wp[r]) + R * in + k), _MM_HINT_T0);
  if (PF == kPfStream && (k & 32) == 0) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(wp[0]) + R * k;  // this step's point of the tile's span
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(at + kPfFar + 64 * r), _MM_HINT_T2);
      _mm_prefetch(reinterpret_cast<const char*>(at + kPfNear + 64 * r), _MM_HINT_T0);
    }
  }
  __m256i xv[T], xo[T];
  for (int t = 0; t < T; ++t) {
    xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[t] + k));
    xo[t] = Dot::xop(xv[t]);
  }
  for (int r = 0; r < R; ++r) {
    const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[r] + k));
    for (int t = 0; t < T; ++t) acc[t][r] = Dot::add(acc[t][r], xo[t], xv[t], wv);
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
// corr (lanes 0..R) is subtracted from the sums: Dot::kOffsetX's 128 * sum_i w[r][i], else 0.
template <class Dot, int R, int T, Prefetch PF>
inline void tile(const GemmQ8Args& a, size_t t, size_t o, __m128i corr) {
  const size_t in = a.in;
  const int8_t* wp[R];
  const int8_t* xp[T];
  for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * in;
  for (int i = 0; i < T; ++i) xp[i] = a.xq + (t + i) * in;
  __m256i acc[T][R];
  for (int i = 0; i < T; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_si256();
  size_t k = 0;
  for (; k + 32 <= in; k += 32) step32<Dot, R, T, PF>(acc, wp, xp, k, in);
  if (k < in) {
    // Tail of fewer than 32 columns through zero-padded copies (reading past a row could leave the
    // mapping on the last one). Padding contributes nothing: its weights are 0.
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
    step32<Dot, R, T, kPfNone>(acc, wq, xq, 0, 0);
  }
  for (int i = 0; i < T; ++i) {
    const __m128i s = _mm_sub_epi32(hsum4<R>(acc[i]), corr);
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

// 128 * sum_i w[r][i] for r < R in lanes 0..R (the rest 0), with Dot's own instruction: a sum of the
// products of 1 and w (Dot::xop of the int8 value -127 is the byte 1). Exact in modular int32
// arithmetic, like the sums it corrects.
template <class Dot, int R>
inline __m128i offset_correction(const int8_t* const (&wp)[R], size_t in) {
  if constexpr (!Dot::kOffsetX) {
    return _mm_setzero_si128();
  } else {
    const __m256i one = Dot::xop(_mm256_set1_epi8(-127));
    __m256i acc[R];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    size_t k = 0;
    for (; k + 32 <= in; k += 32)
      for (int r = 0; r < R; ++r)
        acc[r] = Dot::add(acc[r], one, one, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp[r] + k)));
    if (k < in)
      for (int r = 0; r < R; ++r) {
        alignas(32) int8_t wb[32] = {0};
        memcpy(wb, wp[r] + k, in - k);
        acc[r] = Dot::add(acc[r], one, one, _mm256_load_si256(reinterpret_cast<const __m256i*>(wb)));
      }
    return _mm_slli_epi32(hsum4<R>(acc), 7);
  }
}

// Rows [o, o + R) for tokens [t0, t1): the first token tile brings the rows into L1 (and prefetches the
// next ones: PF), the others reuse them.
template <class Dot, int R, Prefetch PF>
inline void rows(const GemmQ8Args& a, size_t t0, size_t t1, size_t o) {
  const int8_t* wp[R];
  for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * a.in;
  const __m128i corr = offset_correction<Dot, R>(wp, a.in);
  size_t t = t0;
  if (t + Dot::kTileT <= t1) {
    tile<Dot, R, Dot::kTileT, PF>(a, t, o, corr);
    t += Dot::kTileT;
  } else if (t < t1) {
    tile<Dot, R, 1, PF>(a, t, o, corr);
    ++t;
  }
  for (; t + Dot::kTileT <= t1; t += Dot::kTileT) tile<Dot, R, Dot::kTileT, kPfNone>(a, t, o, corr);
  for (; t < t1; ++t) tile<Dot, R, 1, kPfNone>(a, t, o, corr);
}

template <class Dot, Prefetch PF>
inline void rows_range(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  size_t o = o0;
  for (; o + kTileR <= o1; o += kTileR) rows<Dot, kTileR, PF>(a, t0, t1, o);
  switch (o1 - o) {
    case 3: rows<Dot, 3, PF>(a, t0, t1, o); break;
    case 2: rows<Dot, 2, PF>(a, t0, t1, o); break;
    case 1: rows<Dot, 1, PF>(a, t0, t1, o); break;
    default: break;
  }
}

// The tile tokens [t0, t1) x output channels [o0, o1) (Kernels::gemm_q8_tile).
template <class Dot>
inline void gemm_q8_tile_impl(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  if (t1 - t0 < kStreamBatch)
    rows_range<Dot, kPfStream>(a, t0, t1, o0, o1);
  else
    rows_range<Dot, kPfRows>(a, t0, t1, o0, o1);
}

}  // namespace
}  // namespace ember
