// f32-gemm-avx2: the kernel table's gemm_f32_tile on AVX2 + FMA (kernels.h states the contract). A
// register tile of up to 6 rows x 16 columns: 12 accumulators, 2 B registers and 1 broadcast of A.
// Each column keeps one fused multiply-add per term in p order from +0, then the bias and accumulate
// adds: the reference's bits. Columns past nr are computed on the panel's zero padding and never
// stored (masked stores), so any nr takes the same path. Rules of kernels_avx2.h apply.
#include <immintrin.h>

#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

const int32_t kMask[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                           0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};

template <int MR, bool MASK>
void tile(size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c, size_t ldc, bool acc,
          const float* bias) {
  __m256i m0 = _mm256_set1_epi32(-1), m1 = m0;
  if (MASK) {
    m0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 16 - (nr < 8 ? nr : 8)));
    m1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 16 - (nr > 8 ? nr - 8 : 0)));
  }
  __m256 c0[MR], c1[MR];
  const float* ar[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    c0[r] = c1[r] = _mm256_setzero_ps();
    ar[r] = a + r * rs;
  }
  for (size_t p = 0; p < kc; ++p, b += 16) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(ar[r]);
      ar[r] += cs;
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
  }
  if (bias) {
    const __m256 bb0 = _mm256_maskload_ps(bias, m0), bb1 = _mm256_maskload_ps(bias + 8, m1);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      c0[r] = _mm256_add_ps(c0[r], bb0);
      c1[r] = _mm256_add_ps(c1[r], bb1);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
    if (MASK) {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_maskload_ps(cr, m0), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_maskload_ps(cr + 8, m1), c1[r]);
      }
      _mm256_maskstore_ps(cr, m0, c0[r]);
      _mm256_maskstore_ps(cr + 8, m1, c1[r]);
    } else {
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]);
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    }
  }
}

template <int MR>
void tile_mr(size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c, size_t ldc, bool acc,
             const float* bias) {
  if (nr == 16) tile<MR, false>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
  else tile<MR, true>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
}

}  // namespace

void gemm_f32_tile_avx2(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c,
                        size_t ldc, bool acc, const float* bias) {
  switch (mr) {
    case 1: return tile_mr<1>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 2: return tile_mr<2>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 3: return tile_mr<3>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 4: return tile_mr<4>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 5: return tile_mr<5>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 6: return tile_mr<6>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    default: return;
  }
}

}  // namespace ember
