// The int4 GEMM tile of the NEON tables (Kernels::gemm_q4_tile), shared by gemm_q4_neon.cpp and
// gemm_q4_neondot.cpp, which differ only in how 4 products per int32 lane are added (the Dot policy).
// format/q4.h's 64-byte pairs hold 4 input channels of 16 rows per nibble half; a 16-byte quarter is 4
// rows, one 32-bit lane per row, so a broadcast of 4 activation bytes against the signed weights
// q = u - 8 adds each row's 4 products into its own lane: the group sum needs no horizontal reduction
// and the float accumulation runs lane by lane in group order, the reference's order for every row:
//   acc = fma(scale, float(s), acc);  y = fma(xs[t], acc, bias)
// The weights are made signed (u - 8) before the products, so no correction by xg is needed; the sums
// are exact, so both variants return the reference's bits. Include it from those two files only
// (kernels_neon.h's rule: internal linkage).
#pragma once

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

namespace ember {
namespace {

// acc[t][q][n]: token, 4-row quarter of the 16-row block, accumulator (NA = 2: the low and the high
// nibbles' products apart, for more independent chains when there are few tokens).
template <class Dot, int T, int NA>
inline void q4_block_tokens(const GemmQ4Args& a, size_t b, size_t t, float* accbuf /* T x 16 */) {
  const size_t groups = a.in / a.group, G = a.group;
  const uint8_t* wb = a.w + b * 8 * a.in;
  const uint16_t* sb = a.ws + b * groups * 16;
  const uint8x16_t mask = vdupq_n_u8(0x0f);
  const int8x16_t eight = vdupq_n_s8(8);
  float32x4_t facc[T][4];
  for (int i = 0; i < T; ++i)
    for (int q = 0; q < 4; ++q) facc[i][q] = vdupq_n_f32(0.0f);
  for (size_t g = 0; g < groups; ++g) {
    const uint8_t* wg = wb + g * 8 * G;
    int32x4_t acc[T][4][NA];
    for (int i = 0; i < T; ++i)
      for (int q = 0; q < 4; ++q)
        for (int n = 0; n < NA; ++n) acc[i][q][n] = vdupq_n_s32(0);
    for (size_t p = 0; p < G / 8; ++p) {
      int8x16_t lo[4], hi[4];
      for (int q = 0; q < 4; ++q) {
        const uint8x16_t v = vld1q_u8(wg + 64 * p + 16 * q);
        lo[q] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, mask)), eight);
        hi[q] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
      }
      for (int i = 0; i < T; ++i) {
        const int8_t* x = a.xq + (t + i) * a.in + g * G + 8 * p;
        int32_t x0, x1;
        memcpy(&x0, x, 4);
        memcpy(&x1, x + 4, 4);
        const int8x16_t xa = vreinterpretq_s8_s32(vdupq_n_s32(x0)), xb = vreinterpretq_s8_s32(vdupq_n_s32(x1));
        for (int q = 0; q < 4; ++q) {
          acc[i][q][0] = Dot::add(acc[i][q][0], lo[q], xa);
          acc[i][q][NA - 1] = Dot::add(acc[i][q][NA - 1], hi[q], xb);
        }
      }
    }
    float32x4_t sc[4];
    for (int q = 0; q < 4; ++q) sc[q] = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(sb + g * 16 + 4 * q)));
    for (int i = 0; i < T; ++i)
      for (int q = 0; q < 4; ++q) {
        int32x4_t s = acc[i][q][0];
        if (NA == 2) s = vaddq_s32(s, acc[i][q][NA - 1]);
        facc[i][q] = vfmaq_f32(facc[i][q], sc[q], vcvtq_f32_s32(s));
      }
  }
  for (int i = 0; i < T; ++i)
    for (int q = 0; q < 4; ++q) vst1q_f32(accbuf + 16 * i + 4 * q, facc[i][q]);
}

// y[t][o..o+n) = fma(xs[t], acc, bias) from the 16 accumulators of a block.
inline void q4_store(const GemmQ4Args& a, size_t t, size_t o, size_t n, const float* acc) {
  float* y = a.y + t * a.out + o;
  if (n == 16) {
    const float32x4_t xs = vdupq_n_f32(a.xs[t]);
    for (int q = 0; q < 4; ++q) {
      const float32x4_t bias = a.bias ? vld1q_f32(a.bias + o + 4 * q) : vdupq_n_f32(0.0f);
      vst1q_f32(y + 4 * q, vfmaq_f32(bias, xs, vld1q_f32(acc + 4 * q)));
    }
  } else {
    for (size_t r = 0; r < n; ++r) y[r] = fmaf(a.xs[t], acc[r], a.bias ? a.bias[o + r] : 0.0f);
  }
}

template <class Dot, int T, int NA>
inline void q4_tokens(const GemmQ4Args& a, size_t b, size_t t, size_t o, size_t n) {
  float acc[T * 16];
  q4_block_tokens<Dot, T, NA>(a, b, t, acc);
  for (int i = 0; i < T; ++i) q4_store(a, t + i, o, n, acc + 16 * i);
}

// Kernels::gemm_q4_tile: row blocks outer (a block's 8 in bytes stay in L1 across the token tiles).
template <class Dot>
inline void gemm_q4_tile_impl(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  for (size_t o = o0; o < o1; o += 16) {
    const size_t b = o / 16, n = o1 - o < 16 ? o1 - o : 16;
    size_t t = t0;
    for (; t + 2 <= t1; t += 2) q4_tokens<Dot, 2, 1>(a, b, t, o, n);
    for (; t < t1; ++t) q4_tokens<Dot, 1, 2>(a, b, t, o, n);
  }
}

}  // namespace
}  // namespace ember
