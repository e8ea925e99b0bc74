// IEEE binary16 / bfloat16 <-> binary32, bit-exact and independent of the host's FP16 support.
#include <cstring>

#include "ember/config.h"

namespace ember {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Shifts `m` right by `s` (1..31), rounding to nearest, ties to even.
uint32_t shift_round_even(uint32_t m, uint32_t s) {
  const uint32_t q = m >> s;
  const uint32_t rem = m & ((1u << s) - 1u);
  const uint32_t half = 1u << (s - 1);
  return (rem > half || (rem == half && (q & 1u))) ? q + 1 : q;
}

}  // namespace

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
  if (exp != 0) return float_of(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return float_of(sign);
  // Subnormal m * 2^-24: normalize so the leading 1 becomes the implicit bit of a normal f32.
  uint32_t e = 113;  // f32 biased exponent of 2^-14 (the half's subnormal scale, 2^-24 * 2^10)
  while ((mant & 0x400u) == 0) {
    mant <<= 1;
    --e;
  }
  return float_of(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) {
    // NaN: keep the top payload bits and force the quiet bit so a payload of only low bits stays NaN.
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf (ties-to-even past 65504)
  if (a >= 0x38800000u) {                       // normal half: rebias exponent, round 13 dropped bits
    return static_cast<uint16_t>(sign | shift_round_even(a - 0x38000000u, 13));
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to (signed) zero, the tie going to even 0
  // Subnormal half: value = m * 2^(e-150) = h * 2^-24, so h = m >> (126 - e), s in [14, 24].
  // A carry out of the mantissa yields 0x400, the smallest normal, which is the right encoding.
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign | shift_round_even(m, 126 - e));
}

float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

void decode_f32(DType dtype, const uint8_t* data, size_t n, const float* scales, size_t row_len, float* out) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, data, n * sizeof(float));
      return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_to_f32(static_cast<uint16_t>(data[2 * i] | (data[2 * i + 1] << 8)));
      return;
    case DType::kI8:
      for (size_t i = 0; i < n; ++i) out[i] = scales[i / row_len] * static_cast<float>(static_cast<int8_t>(data[i]));
      return;
    case DType::kI4:
      std::memset(out, 0, n * sizeof(float));
      return;
  }
}

}  // namespace ember
