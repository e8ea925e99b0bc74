// The "avx512" table's int4 GEMM (Kernels::gemm_q4_tile): format/q4.h's 64-byte pairs are one zmm each,
// 4 input channels of all 16 rows of a block per nibble half, one 32-bit lane per row. vpdpbusd of the
// unsigned nibbles u by a broadcast of 4 signed activation bytes adds each row's 4 products into its own
// lane, so the group sum needs no reduction and the float accumulation runs lane by lane in group order,
// the reference's order for every row:
//   s = sum(u * x) - 8 * xg[t][g];  acc = fma(scale, float(s), acc);  y = fma(xs[t], acc, bias)
// Sums are exact (int32), so the result is the reference's bits. Decode (1-3 tokens) runs two blocks at
// once with the low and high nibbles' products in separate accumulators (4 independent dependency
// chains); prefill runs 8 tokens per unpacked weight vector. Compiled with AVX-512 F/BW/VL/VNNI flags
// (src/meson.build): call only when select_x86.cpp's CPUID check reports them. Internal linkage
// throughout (kernels_avx2.h's rule).
#pragma GCC diagnostic push  // GCC 12's AVX-512 headers warn falsely (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <stdint.h>
#include <string.h>

#include "kernels/avx512/kernels_avx512.h"

namespace ember {
namespace {

// Prefetch distance of the nibble stream (bytes), as in the AVX2 version (gemm_q4_avx2_impl.h).
constexpr size_t kPrefetch = 2048;

// T tokens x NB consecutive blocks (from block b) x NA accumulators; writes T x NB x 16 accumulators.
template <int T, int NB, int NA, bool PF>
inline void block_tokens(const GemmQ4Args& a, size_t b, size_t t, __m512 (&out)[T][NB]) {
  const size_t groups = a.in / a.group, G = a.group;
  const __m512i mask = _mm512_set1_epi8(0x0f);
  __m512 facc[T][NB];
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < NB; ++j) facc[i][j] = _mm512_setzero_ps();
  for (size_t g = 0; g < groups; ++g) {
    __m512i acc[T][NB][NA];
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < NB; ++j)
        for (int n = 0; n < NA; ++n) acc[i][j][n] = _mm512_setzero_si512();
    for (size_t p = 0; p < G / 8; ++p) {
      __m512i lo[NB], hi[NB];
      for (int j = 0; j < NB; ++j) {
        const uint8_t* wp = a.w + (b + j) * 8 * a.in + g * 8 * G + 64 * p;
        if (PF) _mm_prefetch(reinterpret_cast<const char*>(wp + kPrefetch), _MM_HINT_T0);
        const __m512i v = _mm512_loadu_si512(wp);
        lo[j] = _mm512_and_si512(v, mask);
        hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      }
      for (int i = 0; i < T; ++i) {
        const int8_t* x = a.xq + (t + i) * a.in + g * G + 8 * p;
        int32_t x0, x1;
        memcpy(&x0, x, 4);
        memcpy(&x1, x + 4, 4);
        const __m512i xa = _mm512_set1_epi32(x0), xb = _mm512_set1_epi32(x1);
        for (int j = 0; j < NB; ++j) {
          acc[i][j][0] = _mm512_dpbusd_epi32(acc[i][j][0], lo[j], xa);
          acc[i][j][NA - 1] = _mm512_dpbusd_epi32(acc[i][j][NA - 1], hi[j], xb);
        }
      }
    }
    __m512 sc[NB];
    for (int j = 0; j < NB; ++j)
      sc[j] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.ws + ((b + j) * groups + g) * 16)));
    for (int i = 0; i < T; ++i) {
      const __m512i corr = _mm512_set1_epi32(8 * a.xg[(t + i) * groups + g]);
      for (int j = 0; j < NB; ++j) {
        __m512i s = acc[i][j][0];
        if (NA == 2) s = _mm512_add_epi32(s, acc[i][j][NA - 1]);
        facc[i][j] = _mm512_fmadd_ps(sc[j], _mm512_cvtepi32_ps(_mm512_sub_epi32(s, corr)), facc[i][j]);
      }
    }
  }
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < NB; ++j) out[i][j] = facc[i][j];
}

// Rows [o, o + n) (n <= 16, one block) of token t: fma(xs[t], acc, bias), masked for a last partial block.
inline void store(const GemmQ4Args& a, size_t t, size_t o, size_t n, __m512 acc) {
  const __mmask16 m = n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
  const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(m, a.bias + o) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(a.y + t * a.out + o, m, _mm512_fmadd_ps(_mm512_set1_ps(a.xs[t]), acc, bias));
}

template <int T, int NB, int NA, bool PF>
inline void run(const GemmQ4Args& a, size_t o, size_t o1, size_t t) {
  __m512 acc[T][NB];
  block_tokens<T, NB, NA, PF>(a, o / 16, t, acc);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < NB; ++j) {
      const size_t oj = o + 16 * j;
      if (oj < o1) store(a, t + i, oj, o1 - oj, acc[i][j]);
    }
}

}  // namespace

void gemm_q4_tile_avx512(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  if (t0 >= t1 || o0 >= o1) return;
  if (t1 - t0 < 4) {  // decode: two blocks at a time, each token streaming the weights (from L1 after the first)
    size_t o = o0;
    for (; o + 16 < o1; o += 32) {  // a second block exists (possibly partial)
      run<1, 2, 2, true>(a, o, o1, t0);
      for (size_t t = t0 + 1; t < t1; ++t) run<1, 2, 2, false>(a, o, o1, t);
    }
    if (o < o1) {
      run<1, 1, 2, true>(a, o, o1, t0);
      for (size_t t = t0 + 1; t < t1; ++t) run<1, 1, 2, false>(a, o, o1, t);
    }
    return;
  }
  for (size_t o = o0; o < o1; o += 16) {
    size_t t = t0;
    if (t1 - t0 >= 8) {
      run<8, 1, 1, true>(a, o, o1, t);
      t += 8;
    } else {
      run<4, 1, 1, true>(a, o, o1, t);
      t += 4;
    }
    for (; t + 8 <= t1; t += 8) run<8, 1, 1, false>(a, o, o1, t);
    for (; t + 4 <= t1; t += 4) run<4, 1, 1, false>(a, o, o1, t);
    for (; t < t1; ++t) run<1, 1, 2, false>(a, o, o1, t);
  }
}

}  // namespace ember
