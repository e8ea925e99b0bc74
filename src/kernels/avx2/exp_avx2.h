// exp of 8 floats with AVX2 + FMA, shared by the runtime kernels (kernels_avx2.cpp) and the training
// ops (src/train/ops.cpp, compiled without -mavx2, hence the target attribute).
//
// 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], p a degree-6 Chebyshev fit of e^r (fit error 2.0e-9):
// relative error a few ulp (< 1e-6) for x <= 88 (larger x clamp to 88); 0 below ln(FLT_MIN).
#pragma once

#include <immintrin.h>

namespace ember {
namespace avx2 {

__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.336544750553109f);  // ln(FLT_MIN)
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.6931471824645996f), xc);  // ln2, hi and lo parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-1.9046542999577679e-9f), r);
  __m256 p = _mm256_set1_ps(0.0013941108433972675f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.0083751263981533357f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.041666352896775157f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.16666415514653275f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.50000000471177577f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0000000377162138f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  // n in [-126, 127]: a normal power of two.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

}  // namespace avx2
}  // namespace ember
