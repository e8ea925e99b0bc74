// The int4 group quantizer shared by quantize_rows_q4 (round to nearest) and GPTQ (src/quant/gptq.cpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace ember {

// clamp(round-half-even(x * inv), -8, 7): the int4 value of x for the scale 1 / inv.
inline int8_t q4_round(float x, float inv) {
  const float v = std::nearbyint(x * inv);
  return static_cast<int8_t>(v > 7.0f ? 7.0f : (v < -8.0f ? -8.0f : v));
}

// The scale of one group x[0..n) (as half-float bits) among the candidates s = max|x| / m, m = 7, 7.125,
// ..., 9 (rounded to half), the one with the least sum_k (x[k] - s q[k])^2 for q = q4_round(x, 1 / s);
// writes that q. A zero group (or one whose candidates all underflow) gives scale 0 and q = 0.
uint16_t q4_group_scale(const float* x, size_t n, int8_t* q);

}  // namespace ember
