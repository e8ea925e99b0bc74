// f32 kernels for AArch64 NEON, and the "neon" table. Lane-for-lane transcriptions of kernels/avx2
// (see kernels_neon.h): an __m256 is the pair {lo, hi} of float32x4_t, partial sums are kept in the same
// lanes and reduced in the same order, tails load zeros as the AVX2 masked loads do. The approximations
// (exp, GELU tanh and erf forms) and their stated errors are those of kernels_avx2.cpp.
//
// Where the two instruction sets differ in corner cases the AVX2 behaviour is the one written out:
// relu is x > 0 ? x : 0 (vmaxq_f32 would pass NaN through; maxps returns the 0), the GELU-erf blend
// looks at the sign bit as blendvps does.
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

// One AVX2 register: lanes 0..3 in lo, 4..7 in hi.
struct F8 {
  float32x4_t lo, hi;
};

inline F8 load8(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
inline void store8(float* p, F8 v) {
  vst1q_f32(p, v.lo);
  vst1q_f32(p + 4, v.hi);
}
// n in 1..7 floats, the other lanes 0 (_mm256_maskload_ps).
inline F8 load8_tail(const float* p, size_t n) {
  float b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  memcpy(b, p, n * sizeof(float));
  return load8(b);
}
inline void store8_tail(float* p, F8 v, size_t n) {
  float b[8];
  store8(b, v);
  memcpy(p, b, n * sizeof(float));
}
// Lanes [0, n) of v, the rest 0 (n in 1..7).
const uint32_t kTailMask[16] = {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0, 0, 0, 0, 0, 0, 0, 0};
inline F8 keep8(F8 v, size_t n) {
  const uint32x4_t mlo = vld1q_u32(kTailMask + 8 - n), mhi = vld1q_u32(kTailMask + 12 - n);
  return {vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.lo), mlo)),
          vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v.hi), mhi))};
}

// hsum of kernels_avx2.cpp: (l0 + l4 + l2 + l6) + (l1 + l5 + l3 + l7) in that association.
inline float hsum(F8 v) {
  const float32x4_t s = vaddq_f32(v.lo, v.hi);
  const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
  return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}
inline F8 add8(F8 a, F8 b) { return {vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }

// 4 doubles of an __m256d: lanes 0, 1 in a, 2, 3 in b.
struct D4 {
  float64x2_t a, b;
};
inline double hsum(D4 v) {
  const float64x2_t s = vaddq_f64(v.a, v.b);
  return vgetq_lane_f64(s, 0) + vgetq_lane_f64(s, 1);
}

inline float32x4_t exp4(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(-87.336544750553109f);  // ln(FLT_MIN)
  const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), vdupq_n_f32(88.0f));
  const float32x4_t n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(xc, n, vdupq_n_f32(0.6931471824645996f));  // ln2, hi and lo parts
  r = vfmsq_f32(r, n, vdupq_n_f32(-1.9046542999577679e-9f));
  float32x4_t p = vdupq_n_f32(0.0013941108433972675f);
  p = vfmaq_f32(vdupq_n_f32(0.0083751263981533357f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.041666352896775157f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.16666415514653275f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.50000000471177577f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0000000377162138f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  // n in [-126, 127]: a normal power of two.
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), vcltq_f32(x, lo)));
}

// |x| clamped to >= 1e-15 where it is squared: see tiny() in kernels_avx2.cpp (kept for identical results).
inline float32x4_t gelu_tanh4(float32x4_t x) {
  const float32x4_t c1 = vdupq_n_f32(-2.0f * 0.7978845608028654f);
  const float32x4_t c3 = vdupq_n_f32(-2.0f * 0.7978845608028654f * 0.044715f);
  const float32x4_t ax = vmaxq_f32(vabsq_f32(x), vdupq_n_f32(1e-15f));
  const float32x4_t m2u = vmulq_f32(x, vfmaq_f32(c1, c3, vmulq_f32(ax, ax)));
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp4(m2u)));
}

inline float32x4_t gelu_erf4(float32x4_t x) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t z = vmaxq_f32(vmulq_f32(vabsq_f32(x), vdupq_n_f32(0.70710678118654752f)), vdupq_n_f32(1e-15f));
  const float32x4_t t = vdivq_f32(one, vfmaq_f32(one, vdupq_n_f32(0.4f), z));
  float32x4_t g = vdupq_n_f32(0.08721732255593417f);
  g = vfmaq_f32(vdupq_n_f32(-0.46191211924699585f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.83503478056580809f), g, t);
  g = vfmaq_f32(vdupq_n_f32(-0.56247781685480878f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.55289818431702599f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.070870461692059335f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.25642421972495539f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.22172319847593084f), g, t);
  g = vfmaq_f32(vdupq_n_f32(0.00022177390184563554f), g, t);
  const float32x4_t h = vmulq_f32(vmulq_f32(vdupq_n_f32(0.5f), g), exp4(vmulq_f32(vsubq_f32(vdupq_n_f32(0.0f), z), z)));
  const uint32x4_t neg = vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_f32(x), 31));  // sign bit of x
  return vmulq_f32(x, vbslq_f32(neg, h, vsubq_f32(one, h)));
}

inline float32x4_t relu4(float32x4_t x) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  return vbslq_f32(vcgtq_f32(x, zero), x, zero);
}

struct GeluTanh { float32x4_t operator()(float32x4_t x) const { return gelu_tanh4(x); } };
struct GeluErf { float32x4_t operator()(float32x4_t x) const { return gelu_erf4(x); } };
struct Relu { float32x4_t operator()(float32x4_t x) const { return relu4(x); } };

// Elementwise: lanes are independent, so 4-wide steps give the AVX2 results.
template <class F>
inline void map_inplace(float* x, size_t n) {
  const F f;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, f(vld1q_f32(x + i)));
  if (i < n) {
    float b[4] = {0, 0, 0, 0};
    memcpy(b, x + i, (n - i) * sizeof(float));
    vst1q_f32(b, f(vld1q_f32(b)));
    memcpy(x + i, b, (n - i) * sizeof(float));
  }
}

void gelu_tanh_neon(float* x, size_t n) { map_inplace<GeluTanh>(x, n); }
void gelu_erf_neon(float* x, size_t n) { map_inplace<GeluErf>(x, n); }
void relu_neon(float* x, size_t n) { map_inplace<Relu>(x, n); }

inline F8 exp8_minus(F8 v, float32x4_t m) { return {exp4(vsubq_f32(v.lo, m)), exp4(vsubq_f32(v.hi, m))}; }

void softmax_neon(float* x, size_t n) {
  // The maximum is exact in any order.
  float32x4_t mv = vdupq_n_f32(-INFINITY);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vld1q_f32(x + i));
  float mx = vmaxvq_f32(mv);
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float32x4_t vmax = vdupq_n_f32(mx);
  const float32x4_t z = vdupq_n_f32(0.0f);
  F8 s0 = {z, z}, s1 = {z, z};
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const F8 e0 = exp8_minus(load8(x + i), vmax), e1 = exp8_minus(load8(x + i + 8), vmax);
    store8(x + i, e0);
    store8(x + i + 8, e1);
    s0 = add8(s0, e0);
    s1 = add8(s1, e1);
  }
  for (; i + 8 <= n; i += 8) {
    const F8 e = exp8_minus(load8(x + i), vmax);
    store8(x + i, e);
    s0 = add8(s0, e);
  }
  if (i < n) {
    const F8 e = keep8(exp8_minus(load8_tail(x + i, n - i), vmax), n - i);
    store8_tail(x + i, e, n - i);
    s1 = add8(s1, e);
  }
  const float32x4_t inv = vdupq_n_f32(1.0f / hsum(add8(s0, s1)));
  i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), inv));
  for (; i < n; ++i) x[i] *= vgetq_lane_f32(inv, 0);
}

inline F8 fma8(F8 a, F8 b, F8 c) { return {vfmaq_f32(c.lo, a.lo, b.lo), vfmaq_f32(c.hi, a.hi, b.hi)}; }

float dot_neon(const float* a, const float* b, size_t n) {
  const float32x4_t z = vdupq_n_f32(0.0f);
  F8 s0 = {z, z}, s1 = {z, z}, s2 = {z, z}, s3 = {z, z};
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = fma8(load8(a + i), load8(b + i), s0);
    s1 = fma8(load8(a + i + 8), load8(b + i + 8), s1);
    s2 = fma8(load8(a + i + 16), load8(b + i + 16), s2);
    s3 = fma8(load8(a + i + 24), load8(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = fma8(load8(a + i), load8(b + i), s0);
  if (i < n) s1 = fma8(load8_tail(a + i, n - i), load8_tail(b + i, n - i), s1);
  return hsum(add8(add8(s0, s1), add8(s2, s3)));
}

void axpy_neon(float a, const float* x, float* y, size_t n) {
  const float32x4_t va = vdupq_n_f32(a);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_f32(vld1q_f32(y + i), va, vld1q_f32(x + i)));
  for (; i < n; ++i) y[i] = fmaf(a, x[i], y[i]);  // the same single rounding as the vector lanes
}

void add_neon(const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(x + i), vld1q_f32(y + i)));
  for (; i < n; ++i) y[i] = x[i] + y[i];
}

// Mean and variance in double, with the AVX2 kernel's lanes: s0 holds elements 0..3 of every 8, s1
// elements 4..7, then the same reductions and the same scalar tail.
void layernorm_neon(const float* x, const float* g, const float* b, float* y, size_t n, float eps) {
  const float64x2_t zd = vdupq_n_f64(0.0);
  D4 s0 = {zd, zd}, s1 = {zd, zd};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
    s0.a = vaddq_f64(s0.a, vcvt_f64_f32(vget_low_f32(lo)));
    s0.b = vaddq_f64(s0.b, vcvt_high_f64_f32(lo));
    s1.a = vaddq_f64(s1.a, vcvt_f64_f32(vget_low_f32(hi)));
    s1.b = vaddq_f64(s1.b, vcvt_high_f64_f32(hi));
  }
  double sum = hsum(D4{vaddq_f64(s0.a, s1.a), vaddq_f64(s0.b, s1.b)});
  for (size_t j = i; j < n; ++j) sum += x[j];
  const double mean = sum / static_cast<double>(n);
  const float64x2_t vm = vdupq_n_f64(mean);
  s0 = {zd, zd};
  s1 = {zd, zd};
  for (i = 0; i + 8 <= n; i += 8) {
    const float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + i + 4);
    const float64x2_t d0a = vsubq_f64(vcvt_f64_f32(vget_low_f32(lo)), vm), d0b = vsubq_f64(vcvt_high_f64_f32(lo), vm);
    const float64x2_t d1a = vsubq_f64(vcvt_f64_f32(vget_low_f32(hi)), vm), d1b = vsubq_f64(vcvt_high_f64_f32(hi), vm);
    s0.a = vfmaq_f64(s0.a, d0a, d0a);
    s0.b = vfmaq_f64(s0.b, d0b, d0b);
    s1.a = vfmaq_f64(s1.a, d1a, d1a);
    s1.b = vfmaq_f64(s1.b, d1b, d1b);
  }
  double var = hsum(D4{vaddq_f64(s0.a, s1.a), vaddq_f64(s0.b, s1.b)});
  for (size_t j = i; j < n; ++j) var += (x[j] - mean) * (x[j] - mean);
  var /= static_cast<double>(n);
  const float32x4_t m = vdupq_n_f32(static_cast<float>(mean));
  const float32x4_t rstd = vdupq_n_f32(static_cast<float>(1.0 / sqrt(var + eps)));
  for (i = 0; i + 4 <= n; i += 4) {
    const float32x4_t v = vmulq_f32(vsubq_f32(vld1q_f32(x + i), m), rstd);
    vst1q_f32(y + i, vfmaq_f32(vld1q_f32(b + i), v, vld1q_f32(g + i)));
  }
  const float ms = vgetq_lane_f32(m, 0), rs = vgetq_lane_f32(rstd, 0);
  for (; i < n; ++i) y[i] = fmaf((x[i] - ms) * rs, g[i], b[i]);
}

// Columns [i, i + 8 * A) of the weighted sum (the AVX2 kernel's blocks: a pair of float32x4_t per 8
// columns), accumulators kept in registers over all n rows. Each lane sees the reference's fma chain.
template <int A>
inline void wsum_block(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, size_t i, float* out) {
  float32x4_t acc[2 * A];
  for (int a = 0; a < 2 * A; ++a) acc[a] = vdupq_n_f32(0.0f);
  const int8_t* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const float32x4_t w = vdupq_n_f32(p[j] * scale[j]);
    for (int a = 0; a < A; ++a) {
      const int16x8_t h = vmovl_s8(vld1_s8(row + 8 * a));
      acc[2 * a] = vfmaq_f32(acc[2 * a], w, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))));
      acc[2 * a + 1] = vfmaq_f32(acc[2 * a + 1], w, vcvtq_f32_s32(vmovl_high_s16(h)));
    }
  }
  for (int a = 0; a < 2 * A; ++a) vst1q_f32(out + i + 4 * a, acc[a]);
}

// f32-q8-wsum-neon: 64, 32, then 8 columns per pass over the rows; a tail of d % 8 columns through
// zero-padded 8-byte copies (never reading past a row).
void wsum_rows_q8_neon(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, float* out) {
  if (n == 0) {  // no rows (v may be null: no pointer arithmetic on it, UB): the sum is 0, as in ref
    memset(out, 0, d * sizeof(float));
    return;
  }
  size_t i = 0;
  for (; i + 64 <= d; i += 64) wsum_block<8>(p, v, scale, n, d, i, out);
  if (i + 32 <= d) {
    wsum_block<4>(p, v, scale, n, d, i, out);
    i += 32;
  }
  for (; i + 8 <= d; i += 8) wsum_block<1>(p, v, scale, n, d, i, out);
  if (i < d) {
    const size_t rem = d - i;
    float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
    const int8_t* row = v + i;
    for (size_t j = 0; j < n; ++j, row += d) {
      int8_t b[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      memcpy(b, row, rem);
      const float32x4_t w = vdupq_n_f32(p[j] * scale[j]);
      const int16x8_t h = vmovl_s8(vld1_s8(b));
      lo = vfmaq_f32(lo, w, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))));
      hi = vfmaq_f32(hi, w, vcvtq_f32_s32(vmovl_high_s16(h)));
    }
    store8_tail(out + i, F8{lo, hi}, rem);
  }
}

void scores_f32_neon(const float* q, const float* k, size_t n, size_t d, float scale, float* s) {
  for (size_t j = 0; j < n; ++j) s[j] = dot_neon(q, k + j * d, d) * scale;  // dot_neon inlined: no call per row
}

template <int A>
inline void wsum_block_f32(const float* p, const float* v, size_t n, size_t d, size_t i, float* out) {
  float32x4_t acc[A];
  for (int a = 0; a < A; ++a) acc[a] = vld1q_f32(out + i + 4 * a);
  const float* row = v + i;
  for (size_t j = 0; j < n; ++j, row += d) {
    const float32x4_t w = vdupq_n_f32(p[j]);
    for (int a = 0; a < A; ++a) acc[a] = vfmaq_f32(acc[a], w, vld1q_f32(row + 4 * a));
  }
  for (int a = 0; a < A; ++a) vst1q_f32(out + i + 4 * a, acc[a]);
}

// f32-wsum-neon: accumulators (loaded from out) in registers over all rows (64, 16, then 4 columns per
// pass); the d % 4 tail with scalar fmaf, the same single rounding as the vector lanes.
void wsum_rows_f32_neon(const float* p, const float* v, size_t n, size_t d, float* out) {
  if (n == 0) return;  // v may be null
  size_t i = 0;
  for (; i + 64 <= d; i += 64) wsum_block_f32<16>(p, v, n, d, i, out);
  for (; i + 16 <= d; i += 16) wsum_block_f32<4>(p, v, n, d, i, out);
  for (; i + 4 <= d; i += 4) wsum_block_f32<1>(p, v, n, d, i, out);
  for (; i < d; ++i) {
    float acc = out[i];
    for (size_t j = 0; j < n; ++j) acc = fmaf(p[j], v[j * d + i], acc);
    out[i] = acc;
  }
}

}  // namespace

const Kernels& neon_kernels() {
  static const Kernels k = {"neon",       layernorm_neon, gelu_tanh_neon,        gelu_erf_neon, relu_neon,
                            softmax_neon, dot_neon,       axpy_neon,             add_neon,      quantize_rows_q8_neon,
                            gemm_q8_neon, gemm_q8_tile_neon, wsum_rows_q8_neon,
                            scores_f32_neon, wsum_rows_f32_neon,
                            // Training's activation backward: the reference's (scalar) until a NEON version is measured.
                            reference_kernels().gelu_tanh_backward_f32, reference_kernels().gelu_erf_backward_f32,
                            reference_kernels().relu_backward_f32,
                            reference_kernels().layernorm_backward_f32, reference_kernels().softmax_backward_f32,
                            gemm_f32_tile_neon, gemm_q4_tile_neon};
  return k;
}

}  // namespace ember
