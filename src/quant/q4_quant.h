// The int4 group quantizer shared by quantize_rows_q4 (round to nearest) and GPTQ (src/quant/gptq.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {

constexpr size_t kQ4MaxGroupSearch = 256;  // candidate values are kept in chunks of this many

// The scale of one group x[0..n) (as half-float bits) among the candidates s = max|x| / m, m = 7, 7.125,
// ..., 9 (rounded to half), the one with the least sum_k weight[k] (x[k] - s q[k])^2 (weight nullptr: 1),
// q = clamp(round-half-even(x / s), -8, 7); writes that q. A zero group (or one whose candidates all
// underflow) gives scale 0 and q = 0.
uint16_t q4_group_scale(const float* x, size_t n, const float* weight, int8_t* q);

}  // namespace ember
