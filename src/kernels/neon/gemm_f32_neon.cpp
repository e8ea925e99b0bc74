// f32-gemm-neon: the kernel table's gemm_f32_tile on Advanced SIMD (kernels.h states the contract). A
// register tile of up to 6 rows x 16 columns: 24 accumulators (4 per row), 4 B registers and a
// broadcast of A, of the 32 vector registers. Each column keeps one vfmaq_f32 per term in p order from
// +0; the bias and accumulate adds run per element on the stored tile, so tails need no masks. The
// reference's bits (and the AVX2 kernel's).
#include <arm_neon.h>

#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

template <int MR>
void tile(size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c, size_t ldc, bool acc,
          const float* bias) {
  float32x4_t t[MR][4];
  const float* ar[MR];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < 4; ++q) t[r][q] = vdupq_n_f32(0.0f);
    ar[r] = a + r * rs;
  }
  for (size_t p = 0; p < kc; ++p, b += 16) {
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    for (int r = 0; r < MR; ++r) {
      const float32x4_t av = vdupq_n_f32(*ar[r]);
      ar[r] += cs;
      t[r][0] = vfmaq_f32(t[r][0], av, b0);
      t[r][1] = vfmaq_f32(t[r][1], av, b1);
      t[r][2] = vfmaq_f32(t[r][2], av, b2);
      t[r][3] = vfmaq_f32(t[r][3], av, b3);
    }
  }
  for (int r = 0; r < MR; ++r) {
    float v[16];
    for (int q = 0; q < 4; ++q) vst1q_f32(v + 4 * q, t[r][q]);
    float* cr = c + r * ldc;
    for (size_t j = 0; j < nr; ++j) {
      float x = v[j];
      if (bias) x = x + bias[j];
      cr[j] = acc ? cr[j] + x : x;
    }
  }
}

}  // namespace

void gemm_f32_tile_neon(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c,
                        size_t ldc, bool acc, const float* bias) {
  switch (mr) {
    case 1: return tile<1>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 2: return tile<2>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 3: return tile<3>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 4: return tile<4>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 5: return tile<5>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    case 6: return tile<6>(nr, kc, a, rs, cs, b, c, ldc, acc, bias);
    default: return;
  }
}

}  // namespace ember
