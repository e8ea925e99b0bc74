// The int4 GEMM tile of the x86 tables (Kernels::gemm_q4_tile), shared by gemm_q4_avx2.cpp (vpmaddubsw)
// and gemm_q4_avxvnni.cpp (vpdpbusd). format/q4.h's layout puts 4 input channels of 8 rows in each
// 32-byte half of a 64-byte pair, one 32-bit lane per row, so the lanes of every vector are output
// rows: a broadcast of 4 activation bytes against the unpacked nibbles u (unsigned, 0..15) adds each
// row's 4 products into its own lane, the group sum needs no horizontal reduction, and the float
// accumulation runs lane by lane in group order, which is the reference's order for every row:
//   s = sum(u * x) - 8 * xg[t][g];  acc = fma(scale, float(s), acc);  y = fma(xs[t], acc, bias)
// Dot policies: VNNI: vpdpbusd(acc, u, x) into int32; AVX2: vpmaddubsw(u, x) summed in int16 over <= 32
// input channels (8 pair sums of |u x| <= 15 * 127: at most 30480, no saturation), then vpmaddwd by 1.
// All sums are exact, so every variant returns the reference's bits.
// Include it from those two files only: everything here has internal linkage (kernels_avx2.h's rule).
#pragma once

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

namespace ember {
namespace {

// Software prefetch distance in bytes of the nibble stream (the block's 8 in bytes, then the next
// block's): measured with the weights streamed from DRAM (Sapphire Rapids VM, 2026-12-06), 2048 took the
// LM head from 2.62 to 1.97 ms (1024: 1.92, 512: 2.16); the hardware prefetcher alone restarts at every
// 4 KiB page. Prefetches never fault, so running past the tensor is harmless.
constexpr size_t kQ4Prefetch = 2048;

// Tokens x (two 8-row halves) x NA accumulators (NA = 2 keeps the low and the high nibbles' products
// apart: more independent dependency chains for few tokens). PF: prefetch ahead (the first token tile of
// a block; the others find it in L1).
template <class Dot, int T, int NA, bool PF>
inline void q4_block_tokens(const GemmQ4Args& a, size_t b, size_t t, float* ybuf /* T x 16 accumulators */) {
  const size_t groups = a.in / a.group, G = a.group;
  const uint8_t* wb = a.w + b * 8 * a.in;
  const uint16_t* sb = a.ws + b * groups * 16;
  const __m256i mask = _mm256_set1_epi8(0x0f);
  __m256 facc[T][2];
  for (int i = 0; i < T; ++i) facc[i][0] = facc[i][1] = _mm256_setzero_ps();
  for (size_t g = 0; g < groups; ++g) {
    const uint8_t* wg = wb + g * 8 * G;
    __m256i isum[T][2][NA];
    for (int i = 0; i < T; ++i)
      for (int h = 0; h < 2; ++h)
        for (int n = 0; n < NA; ++n) isum[i][h][n] = _mm256_setzero_si256();
    for (size_t c = 0; c < G; c += 32) {  // up to 32 input channels: 4 pairs of 64 bytes (2 for a group of 16)
      __m256i acc[T][2][NA];
      for (int i = 0; i < T; ++i)
        for (int h = 0; h < 2; ++h)
          for (int n = 0; n < NA; ++n) acc[i][h][n] = _mm256_setzero_si256();
      const size_t p_end = (c + 32 < G ? c + 32 : G) / 8;
      for (size_t p = c / 8; p < p_end; ++p) {
        if (PF) _mm_prefetch(reinterpret_cast<const char*>(wg + 64 * p + kQ4Prefetch), _MM_HINT_T0);
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + 64 * p));
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + 64 * p + 32));
        const __m256i u[2][2] = {{_mm256_and_si256(v0, mask), _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask)},
                                 {_mm256_and_si256(v1, mask), _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask)}};
        for (int i = 0; i < T; ++i) {
          const int8_t* x = a.xq + (t + i) * a.in + g * G + 8 * p;
          int32_t x0, x1;
          memcpy(&x0, x, 4);
          memcpy(&x1, x + 4, 4);
          const __m256i xa = _mm256_set1_epi32(x0), xb = _mm256_set1_epi32(x1);
          for (int h = 0; h < 2; ++h) {
            acc[i][h][0] = Dot::mul(acc[i][h][0], u[h][0], xa);
            acc[i][h][NA - 1] = Dot::mul(acc[i][h][NA - 1], u[h][1], xb);
          }
        }
      }
      for (int i = 0; i < T; ++i)
        for (int h = 0; h < 2; ++h)
          for (int n = 0; n < NA; ++n) isum[i][h][n] = _mm256_add_epi32(isum[i][h][n], Dot::widen(acc[i][h][n]));
    }
    const __m128i s16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + g * 16));
    const __m256 sc[2] = {_mm256_cvtph_ps(s16), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sb + g * 16 + 8)))};
    for (int i = 0; i < T; ++i) {
      const __m256i corr = _mm256_set1_epi32(8 * a.xg[(t + i) * groups + g]);
      for (int h = 0; h < 2; ++h) {
        __m256i s = isum[i][h][0];
        if (NA == 2) s = _mm256_add_epi32(s, isum[i][h][NA - 1]);
        s = _mm256_sub_epi32(s, corr);
        facc[i][h] = _mm256_fmadd_ps(sc[h], _mm256_cvtepi32_ps(s), facc[i][h]);
      }
    }
  }
  for (int i = 0; i < T; ++i)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(ybuf + 16 * i + 8 * h, facc[i][h]);
}

// y[t][o..o+n) = fma(xs[t], acc, bias) from the 16 accumulators of a block.
inline void q4_store(const GemmQ4Args& a, size_t t, size_t o, size_t n, const float* acc) {
  float* y = a.y + t * a.out + o;
  if (n == 16) {
    const __m256 xs = _mm256_set1_ps(a.xs[t]);
    for (int h = 0; h < 2; ++h) {
      const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + o + 8 * h) : _mm256_setzero_ps();
      _mm256_storeu_ps(y + 8 * h, _mm256_fmadd_ps(xs, _mm256_loadu_ps(acc + 8 * h), bias));
    }
  } else {
    for (size_t r = 0; r < n; ++r) y[r] = fmaf(a.xs[t], acc[r], a.bias ? a.bias[o + r] : 0.0f);
  }
}

template <class Dot, int T, int NA, bool PF>
inline void q4_tokens(const GemmQ4Args& a, size_t b, size_t t, size_t o, size_t n) {
  alignas(32) float acc[T * 16];
  q4_block_tokens<Dot, T, NA, PF>(a, b, t, acc);
  for (int i = 0; i < T; ++i) q4_store(a, t + i, o, n, acc + 16 * i);
}

// Kernels::gemm_q4_tile: row blocks outer (a block's 8 in bytes stay in L1 across the token tiles).
template <class Dot>
inline void gemm_q4_tile_impl(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  for (size_t o = o0; o < o1; o += 16) {
    const size_t b = o / 16, n = o1 - o < 16 ? o1 - o : 16;
    size_t t = t0;
    if (t1 - t0 < 4) {
      if (t < t1) q4_tokens<Dot, 1, 2, true>(a, b, t++, o, n);
      for (; t < t1; ++t) q4_tokens<Dot, 1, 2, false>(a, b, t, o, n);
      continue;
    }
    q4_tokens<Dot, 4, 1, true>(a, b, t, o, n);
    for (t += 4; t + 4 <= t1; t += 4) q4_tokens<Dot, 4, 1, false>(a, b, t, o, n);
    for (; t < t1; ++t) q4_tokens<Dot, 1, 2, false>(a, b, t, o, n);
  }
}

}  // namespace
}  // namespace ember
