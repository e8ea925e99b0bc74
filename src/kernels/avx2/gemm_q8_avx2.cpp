// Int8 kernels for AVX2: per-token activation quantization and the int8 x int8 -> int32 GEMM
// (gemm_q8_avx2_impl.h, with vpmaddubsw + vpmaddwd adding the products).
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/avx2/gemm_q8_avx2_impl.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

// The sign trick: int16 pair sums (never saturating, see the header), widened by multiplying with ones.
struct Maddubs {
  static constexpr bool kOffsetX = false;
  static constexpr int kTileT = 2;
  static __m256i xop(__m256i x) { return _mm256_abs_epi8(x); }
  static __m256i add(__m256i acc, __m256i ax, __m256i x, __m256i w) {
    const __m256i p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w, x));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
  }
};

}  // namespace

void gemm_q8_tile_avx2(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q8_tile_impl<Maddubs>(a, t0, t1, o0, o1);
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
