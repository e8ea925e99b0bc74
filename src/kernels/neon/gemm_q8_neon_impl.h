// The int8 GEMM tile of the NEON tables, shared by gemm_q8_neon.cpp and gemm_q8_neondot.cpp, which
// differ only in how 16 int8 products are added into 4 int32 lanes (the Dot policy). Include it from
// those two files only: everything here has internal linkage, so the dotprod instantiations stay inside
// the dotprod library (the rule of kernels_neon.h).
//
// Register tile: kTileR weight rows x T tokens of int32x4_t accumulators. Each loaded weight vector feeds
// T tokens, each activation vector kTileR rows. Weights are read in place (rows of the mmap, unaligned
// loads); a tail of fewer than 16 columns goes through zero-padded copies, never past a row's end.
// The epilogue is the reference's expression: fma(xs[t] * ws[o], float(acc), bias[o]).
#pragma once

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

namespace ember {
namespace {

constexpr int kTileR = 4;

template <class Dot, int R, int T>
inline void step16(int32x4_t (&acc)[T][R], const int8_t* const (&wp)[R], const int8_t* const (&xp)[T], size_t k) {
  int8x16_t xv[T];
  for (int t = 0; t < T; ++t) xv[t] = vld1q_s8(xp[t] + k);
  for (int r = 0; r < R; ++r) {
    const int8x16_t wv = vld1q_s8(wp[r] + k);
    for (int t = 0; t < T; ++t) acc[t][r] = Dot::add(acc[t][r], xv[t], wv);
  }
}

// Lane r of the result: the sum of the 4 lanes of a[r] (r < R <= 4, the rest 0). Exact.
template <int R>
inline int32x4_t hsum4(const int32x4_t (&a)[R]) {
  int32x4_t v[4];
  for (int r = 0; r < R; ++r) v[r] = a[r];
  for (int r = R; r < 4; ++r) v[r] = vdupq_n_s32(0);
  return vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
}

template <class Dot, int R, int T>
inline void tile(const GemmQ8Args& a, size_t t, size_t o) {
  const size_t in = a.in;
  const int8_t* wp[R];
  const int8_t* xp[T];
  for (int r = 0; r < R; ++r) wp[r] = a.w + (o + r) * in;
  for (int i = 0; i < T; ++i) xp[i] = a.xq + (t + i) * in;
  int32x4_t acc[T][R];
  for (int i = 0; i < T; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = vdupq_n_s32(0);
  size_t k = 0;
  for (; k + 16 <= in; k += 16) step16<Dot, R, T>(acc, wp, xp, k);
  if (k < in) {
    const size_t rem = in - k;
    int8_t wb[R][16];
    int8_t xb[T][16];
    const int8_t* wq[R];
    const int8_t* xq[T];
    for (int r = 0; r < R; ++r) {
      memset(wb[r], 0, 16);
      memcpy(wb[r], wp[r] + k, rem);
      wq[r] = wb[r];
    }
    for (int i = 0; i < T; ++i) {
      memset(xb[i], 0, 16);
      memcpy(xb[i], xp[i] + k, rem);
      xq[i] = xb[i];
    }
    step16<Dot, R, T>(acc, wq, xq, 0);
  }
  for (int i = 0; i < T; ++i) {
    const int32x4_t s = hsum4<R>(acc[i]);
    float* y = a.y + (t + i) * a.out + o;
    if (R == 4) {
      const float32x4_t d = vmulq_f32(vdupq_n_f32(a.xs[t + i]), vld1q_f32(a.ws + o));
      const float32x4_t b = a.bias ? vld1q_f32(a.bias + o) : vdupq_n_f32(0.0f);
      vst1q_f32(y, vfmaq_f32(b, d, vcvtq_f32_s32(s)));
    } else {
      int32_t v[4];
      vst1q_s32(v, s);
      for (int r = 0; r < R; ++r)
        y[r] = fmaf(a.xs[t + i] * a.ws[o + r], static_cast<float>(v[r]), a.bias ? a.bias[o + r] : 0.0f);
    }
  }
}

// Rows [o, o + R) for tokens [t0, t1): tiles of T tokens, then 2 and 1.
template <class Dot, int R, int T>
inline void rows(const GemmQ8Args& a, size_t t0, size_t t1, size_t o) {
  size_t t = t0;
  for (; t + T <= t1; t += T) tile<Dot, R, T>(a, t, o);
  if (T > 2 && t + 2 <= t1) {
    tile<Dot, R, 2>(a, t, o);
    t += 2;
  }
  for (; t < t1; ++t) tile<Dot, R, 1>(a, t, o);
}

template <class Dot, int T>
inline void gemm_q8_tile_impl(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  size_t o = o0;
  for (; o + kTileR <= o1; o += kTileR) rows<Dot, kTileR, T>(a, t0, t1, o);
  switch (o1 - o) {
    case 3: rows<Dot, 3, T>(a, t0, t1, o); break;
    case 2: rows<Dot, 2, T>(a, t0, t1, o); break;
    case 1: rows<Dot, 1, T>(a, t0, t1, o); break;
    default: break;
  }
}

}  // namespace
}  // namespace ember
