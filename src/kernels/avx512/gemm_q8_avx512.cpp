// Int8 kernels of the "avx512" table: the int8 GEMM (gemm_q8_avx512_impl.h) and per-token activation
// quantization, on AVX-512 F / BW / VL / VNNI. Same results as the reference, bit for bit.
// GCC 12's AVX-512 headers draw false -Wuninitialized warnings after inlining (their _mm*_undefined_*
// initialise a variable with itself; GCC bug 105593), located in the header: silenced there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/avx512/gemm_q8_avx512_impl.h"
#include "kernels/avx512/kernels_avx512.h"

namespace ember {

void gemm_q8_tile_avx512(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  using namespace avx512_gemm;
  if (t1 <= t0 || o1 <= o0) return;
  switch (t1 - t0) {
    case 1: gemm_tile<OffsetW, 4, 1>(a, t0, t1, o0, o1); break;
    case 2: gemm_tile<OffsetW, 8, 2>(a, t0, t1, o0, o1); break;
    case 3: gemm_tile<OffsetW, 8, 3>(a, t0, t1, o0, o1); break;
    default: gemm_tile<OffsetX, 8, 3>(a, t0, t1, o0, o1); break;
  }
}

void gemm_q8_avx512(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                    const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_avx512(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

namespace {

// round-half-even(x / s) clamped to [-127, 127]: cvtps2dq rounds in the current (default: nearest-even)
// mode, as nearbyint does in the reference, and the division is the same IEEE operation.
inline __m512i quant16(__m512 x, __m512 s) {
  const __m512i q = _mm512_cvtps_epi32(_mm512_div_ps(x, s));
  return _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
}

inline __m512 abs16(__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff))); }

}  // namespace

void quantize_rows_q8_avx512(const float* x, size_t rows, size_t n, int8_t* q, float* scale) {
  for (size_t r = 0; r < rows; ++r, x += n, q += n) {
    __m512 m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
      m0 = _mm512_max_ps(abs16(_mm512_loadu_ps(x + i)), m0);
      m1 = _mm512_max_ps(abs16(_mm512_loadu_ps(x + i + 16)), m1);
    }
    for (; i + 16 <= n; i += 16) m0 = _mm512_max_ps(abs16(_mm512_loadu_ps(x + i)), m0);
    if (i < n) m1 = _mm512_max_ps(abs16(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (n - i)) - 1), x + i)), m1);
    const float s = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1)) / 127.0f;  // max is exact in any order
    scale[r] = s;
    if (s == 0.0f) {
      memset(q, 0, n);
      continue;
    }
    const __m512 vs = _mm512_set1_ps(s);
    i = 0;
    for (; i + 64 <= n; i += 64) {
      const __m128i a = _mm512_cvtsepi32_epi8(quant16(_mm512_loadu_ps(x + i), vs));
      const __m128i b = _mm512_cvtsepi32_epi8(quant16(_mm512_loadu_ps(x + i + 16), vs));
      const __m128i c = _mm512_cvtsepi32_epi8(quant16(_mm512_loadu_ps(x + i + 32), vs));
      const __m128i d = _mm512_cvtsepi32_epi8(quant16(_mm512_loadu_ps(x + i + 48), vs));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), a);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i + 16), b);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i + 32), c);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i + 48), d);
    }
    for (; i + 16 <= n; i += 16)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(quant16(_mm512_loadu_ps(x + i), vs)));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      _mm512_mask_cvtsepi32_storeu_epi8(q + i, m, quant16(_mm512_maskz_loadu_ps(m, x + i), vs));
    }
  }
}

}  // namespace ember
