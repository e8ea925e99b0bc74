// Scalar reference kernels: the oracle every SIMD kernel is tested against, and the fallback.
#include <cmath>
#include <cstdint>

#include "ember/config.h"
#include "format/q4.h"
#include "kernels/kernels.h"

namespace ember {
namespace {

void layernorm_ref(const float* x, const float* g, const float* b, float* y, size_t n, float eps) {
  double mean = 0.0;
  for (size_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double d = x[i] - mean;
    var += d * d;
  }
  var /= static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
  for (size_t i = 0; i < n; ++i) y[i] = (x[i] - m) * rstd * g[i] + b[i];
}

void gelu_tanh_ref(float* x, size_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (size_t i = 0; i < n; ++i) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void gelu_erf_ref(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.7071067811865476f));
}

void relu_ref(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void softmax_ref(float* x, size_t n) {
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

float dot_ref(const float* a, const float* b, size_t n) {
  float s = 0.0f;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void axpy_ref(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void add_ref(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

void quantize_rows_q8_ref(const float* x, size_t rows, size_t n, int8_t* q, float* scale) {
  for (size_t r = 0; r < rows; ++r, x += n, q += n) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; ++i) {
      const float a = std::fabs(x[i]);
      amax = a > amax ? a : amax;
    }
    const float s = amax / 127.0f;
    scale[r] = s;
    for (size_t i = 0; i < n; ++i) {
      if (s == 0.0f) {
        q[i] = 0;
        continue;
      }
      float v = std::nearbyint(x[i] / s);  // ties to even (default rounding mode)
      v = v < -127.0f ? -127.0f : (v > 127.0f ? 127.0f : v);
      q[i] = v == v ? static_cast<int8_t>(v) : 0;  // NaN (a broken model's activations): no UB cast
    }
  }
}

void gemm_q8_tile_ref(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  for (size_t t = t0; t < t1; ++t) {
    const int8_t* x = a.xq + t * a.in;
    for (size_t o = o0; o < o1; ++o) {
      const int8_t* w = a.w + o * a.in;
      int32_t acc = 0;
      for (size_t i = 0; i < a.in; ++i) acc += int32_t{x[i]} * int32_t{w[i]};
      a.y[t * a.out + o] = std::fma(a.xs[t] * a.ws[o], static_cast<float>(acc), a.bias ? a.bias[o] : 0.0f);
    }
  }
}

void gemm_q8_ref(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                 const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_ref(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

// Straight from the definition in kernels.h, walking format/q4.h's layout: the 64 bytes of pair p of
// group g hold row r's channels 8p + i (low nibbles) and 8p + 4 + i (high) at bytes 4r + i.
void gemm_q4_tile_ref(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  const size_t groups = a.in / a.group;
  for (size_t t = t0; t < t1; ++t) {
    const int8_t* x = a.xq + t * a.in;
    for (size_t o = o0; o < o1; ++o) {
      const size_t b = o / kQ4BlockRows, r = o % kQ4BlockRows;
      float acc = 0.0f;
      for (size_t g = 0; g < groups; ++g) {
        const uint8_t* blk = a.w + b * 8 * a.in + g * 8 * a.group + 4 * r;
        const int8_t* xg = x + g * a.group;
        int32_t s = 0;
        for (size_t p = 0; p < a.group / 8; ++p)
          for (size_t i = 0; i < 4; ++i) {
            const uint8_t byte = blk[64 * p + i];
            s += (int32_t{byte & 0x0f} - 8) * xg[8 * p + i] + (int32_t{byte >> 4} - 8) * xg[8 * p + 4 + i];
          }
        acc = std::fma(f16_to_f32(a.ws[(b * groups + g) * kQ4BlockRows + r]), static_cast<float>(s), acc);
      }
      a.y[t * a.out + o] = std::fma(a.xs[t], acc, a.bias ? a.bias[o] : 0.0f);
    }
  }
}

void wsum_rows_q8_ref(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, float* out) {
  for (size_t i = 0; i < d; ++i) out[i] = 0.0f;
  for (size_t j = 0; j < n; ++j, v += d) {
    const float w = p[j] * scale[j];
    for (size_t i = 0; i < d; ++i) out[i] = std::fma(w, static_cast<float>(v[i]), out[i]);
  }
}

void scores_f32_ref(const float* q, const float* k, size_t n, size_t d, float scale, float* s) {
  for (size_t j = 0; j < n; ++j) s[j] = dot_ref(q, k + j * d, d) * scale;
}

void wsum_rows_f32_ref(const float* p, const float* v, size_t n, size_t d, float* out) {
  for (size_t j = 0; j < n; ++j, v += d)
    for (size_t i = 0; i < d; ++i) out[i] = std::fma(p[j], v[i], out[i]);
}

// d/dx 0.5 x (1 + tanh u), u = k (x + 0.044715 x^3).
void gelu_tanh_backward_ref(float* dinp, const float* dout, const float* inp, const float*, size_t n) {
  const double k = 0.7978845608028654;  // sqrt(2 / pi)
  for (size_t i = 0; i < n; ++i) {
    const double x = inp[i], t = std::tanh(k * (x + 0.044715 * x * x * x)), du = k * (1.0 + 3.0 * 0.044715 * x * x);
    dinp[i] = static_cast<float>(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du) * dout[i];
  }
}

// d/dx x Phi(x) = Phi(x) + x phi(x).
void gelu_erf_backward_ref(float* dinp, const float* dout, const float* inp, const float*, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double x = inp[i];
    dinp[i] = static_cast<float>(0.5 * std::erfc(-x * 0.7071067811865476) + x * 0.3989422804014327 * std::exp(-0.5 * x * x)) *
              dout[i];
  }
}

void relu_backward_ref(float* dinp, const float* dout, const float* inp, const float*, size_t n) {
  for (size_t i = 0; i < n; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

void layernorm_backward_ref(float* dx, bool accumulate, float* dg, float* db, const float* dy, const float* x,
                            const float* g, float mean, float rstd, size_t n) {
  float sum_dn = 0.0f, sum_dnx = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float xh = (x[i] - mean) * rstd;
    const float dn = dy[i] * g[i];
    sum_dn += dn;
    sum_dnx += dn * xh;
    dg[i] += dy[i] * xh;
    db[i] += dy[i];
  }
  const float mdn = sum_dn / static_cast<float>(n), mdnx = sum_dnx / static_cast<float>(n);
  for (size_t i = 0; i < n; ++i) {
    const float v = rstd * (dy[i] * g[i] - mdn - (x[i] - mean) * rstd * mdnx);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

void softmax_backward_ref(float* d, const float* p, size_t n, float scale) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += p[i] * d[i];
  for (size_t i = 0; i < n; ++i) d[i] = scale * p[i] * (d[i] - sum);
}

void gemm_f32_tile_ref(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c,
                       size_t ldc, bool acc, const float* bias) {
  for (size_t r = 0; r < mr; ++r)
    for (size_t j = 0; j < nr; ++j) {
      float t = 0.0f;
      for (size_t p = 0; p < kc; ++p) t = std::fma(a[r * rs + p * cs], b[p * 16 + j], t);
      if (bias) t = t + bias[j];
      float* o = c + r * ldc + j;
      *o = acc ? *o + t : t;
    }
}

}  // namespace

double log_sum_exp_f32(const float* x, size_t n) {
  double mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  return mx + std::log(sum);
}

const Kernels& reference_kernels() {
  static const Kernels k = {"ref",       layernorm_ref, gelu_tanh_ref,        gelu_erf_ref, relu_ref,
                            softmax_ref, dot_ref,       axpy_ref,             add_ref,      quantize_rows_q8_ref,
                            gemm_q8_ref, gemm_q8_tile_ref, wsum_rows_q8_ref,
                            scores_f32_ref, wsum_rows_f32_ref,
                            gelu_tanh_backward_ref, gelu_erf_backward_ref, relu_backward_ref,
                            layernorm_backward_ref, softmax_backward_ref, gemm_f32_tile_ref,
                            gemm_q4_tile_ref};
  return k;
}

}  // namespace ember
