// Int8 kernels for AArch64 NEON: per-token activation quantization and the int8 x int8 -> int32 GEMM
// (qs8-gemm-4x2-neon-mlal: 4 weight rows x 2 tokens per register tile, gemm_q8_neon_impl.h).
//
// 16 products per step: vmull_s8 multiplies the low 8 bytes into int16 lanes, vmlal_high_s8 adds the
// high 8 bytes' products, vpadalq_s16 adds neighbouring int16 lanes into the int32 accumulator. Each
// int16 lane holds two products, at most 2 * 127 * 127 = 32258 <= 32767: exact only because values
// are in [-127, 127] (two -128 * -128 products would make 32768), the precondition of kernels.h that
// quantize_rows_q8 and the model loader guarantee.
#include <arm_neon.h>
#include <string.h>

#include "kernels/neon/gemm_q8_neon_impl.h"
#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

struct Mlal {
  static int32x4_t add(int32x4_t acc, int8x16_t x, int8x16_t w) {
    int16x8_t p = vmull_s8(vget_low_s8(x), vget_low_s8(w));
    p = vmlal_high_s8(p, x, w);
    return vpadalq_s16(acc, p);
  }
};

// round-half-even(x / s) clamped to [-127, 127]: vcvtnq rounds to nearest even like nearbyint in the
// reference, and the division is the same IEEE operation.
inline int32x4_t quant4(float32x4_t x, float32x4_t s) {
  const int32x4_t q = vcvtnq_s32_f32(vdivq_f32(x, s));
  return vmaxq_s32(vminq_s32(q, vdupq_n_s32(127)), vdupq_n_s32(-127));
}

inline int8x8_t pack8(int32x4_t a, int32x4_t b) { return vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))); }

}  // namespace

void gemm_q8_tile_neon(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q8_tile_impl<Mlal, 2>(a, t0, t1, o0, o1);
}

void gemm_q8_neon(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                  const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_neon(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

void quantize_rows_q8_neon(const float* x, size_t rows, size_t n, int8_t* q, float* scale) {
  for (size_t r = 0; r < rows; ++r, x += n, q += n) {
    // max |x| is exact in any order.
    float32x4_t m0 = vdupq_n_f32(0.0f), m1 = vdupq_n_f32(0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      m0 = vmaxq_f32(vabsq_f32(vld1q_f32(x + i)), m0);
      m1 = vmaxq_f32(vabsq_f32(vld1q_f32(x + i + 4)), m1);
    }
    float amax = vmaxvq_f32(vmaxq_f32(m0, m1));
    for (; i < n; ++i) {
      const float v = x[i] < 0 ? -x[i] : x[i];
      amax = v > amax ? v : amax;
    }
    const float s = amax / 127.0f;
    scale[r] = s;
    if (s == 0.0f) {
      memset(q, 0, n);
      continue;
    }
    const float32x4_t vs = vdupq_n_f32(s);
    i = 0;
    for (; i + 16 <= n; i += 16) {
      const int8x8_t lo = pack8(quant4(vld1q_f32(x + i), vs), quant4(vld1q_f32(x + i + 4), vs));
      const int8x8_t hi = pack8(quant4(vld1q_f32(x + i + 8), vs), quant4(vld1q_f32(x + i + 12), vs));
      vst1q_s8(q + i, vcombine_s8(lo, hi));
    }
    for (; i + 8 <= n; i += 8) vst1_s8(q + i, pack8(quant4(vld1q_f32(x + i), vs), quant4(vld1q_f32(x + i + 4), vs)));
    if (i < n) {
      float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      memcpy(b, x + i, (n - i) * sizeof(float));
      int8_t t[8];
      vst1_s8(t, pack8(quant4(vld1q_f32(b), vs), quant4(vld1q_f32(b + 4), vs)));
      memcpy(q + i, t, n - i);
    }
  }
}

}  // namespace ember
