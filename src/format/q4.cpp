#include "format/q4.h"

#include <cstring>

#include "ember/config.h"

namespace ember {

Result<uint64_t> q4_checked_bytes(const std::string& T, const std::vector<uint64_t>& shape, uint64_t group) {
  auto shape_str = [&] {
    std::string r = "[";
    for (size_t i = 0; i < shape.size(); ++i) r += (i ? ", " : "") + std::to_string(shape[i]);
    return r + "]";
  };
  if (shape.size() != 2) return invalid_file(T + ": an i4 tensor must be a matrix, not shape " + shape_str());
  const uint64_t out = shape[0], in = shape[1];
  if (group == 0 || group % kQ4GroupMultiple != 0)
    return invalid_file(T + ": i4 group_size " + std::to_string(group) + " is not a positive multiple of " +
                        std::to_string(kQ4GroupMultiple));
  if (in % group != 0)
    return invalid_file(T + ": i4 group_size " + std::to_string(group) + " does not divide the row length " +
                        std::to_string(in));
  // padded_rows * in / 2 + 2 * padded_rows * (in / group), each step checked.
  const uint64_t lim = UINT64_MAX / 4;
  if (out > lim || in > lim || (in / 2 != 0 && q4_padded_rows(out) > lim / (in / 2)))
    return invalid_file(T + ": shape " + shape_str() + " overflows");
  return q4_bytes(out, in, group);
}

Status q4_check_scales(const std::string& T, const uint8_t* data, uint64_t out, uint64_t in, uint64_t group) {
  const uint8_t* s = data + q4_nibble_bytes(out, in);
  const uint64_t count = q4_scale_count(out, in, group);
  for (uint64_t i = 0; i < count; ++i) {
    const uint16_t h = static_cast<uint16_t>(s[2 * i] | (s[2 * i + 1] << 8));
    if ((h & 0x8000u) != 0 || (h & 0x7c00u) == 0x7c00u)  // sign set, or exponent all ones (inf / NaN)
      return invalid_file(T + ": group scale " + std::to_string(i) + " is not a finite non-negative number");
  }
  return Status::Ok();
}

void q4_pack(const int8_t* q, const uint16_t* scales, size_t out, size_t in, size_t group, uint8_t* dst) {
  const size_t nib = q4_nibble_bytes(out, in);
  std::memset(dst, 0x88, nib);  // padding rows: u = 8 in both nibbles
  std::memset(dst + nib, 0, 2 * q4_scale_count(out, in, group));
  for (size_t o = 0; o < out; ++o)
    for (size_t k = 0; k < in; ++k) {
      bool high;
      uint8_t& b = dst[q4_byte_index(in, group, o, k, &high)];
      const uint8_t u = static_cast<uint8_t>(q[o * in + k] + 8) & 0x0f;
      b = high ? static_cast<uint8_t>((b & 0x0f) | (u << 4)) : static_cast<uint8_t>((b & 0xf0) | u);
    }
  for (size_t o = 0; o < out; ++o)
    for (size_t g = 0; g < in / group; ++g) {
      const uint16_t s = scales[o * (in / group) + g];
      uint8_t* p = dst + nib + 2 * q4_scale_index(in, group, o, g);
      p[0] = static_cast<uint8_t>(s & 0xff);
      p[1] = static_cast<uint8_t>(s >> 8);
    }
}

int q4_value(const uint8_t* data, size_t in, size_t group, size_t o, size_t k) {
  bool high;
  const uint8_t b = data[q4_byte_index(in, group, o, k, &high)];
  return (high ? b >> 4 : b & 0x0f) - 8;
}

uint16_t q4_scale(const uint8_t* data, size_t out, size_t in, size_t group, size_t o, size_t g) {
  const uint8_t* p = data + q4_nibble_bytes(out, in) + 2 * q4_scale_index(in, group, o, g);
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

void q4_dequantize_row(const uint8_t* data, size_t out, size_t in, size_t group, size_t o, float* dst) {
  // Row o's bytes: 4 per 64-byte pair (8 channels), at 4 (o % 16) in its block (the layout above).
  const uint8_t* row = data + o / kQ4BlockRows * 8 * in + 4 * (o % kQ4BlockRows);
  for (size_t g = 0; g < in / group; ++g) {
    const float s = f16_to_f32(q4_scale(data, out, in, group, o, g));
    for (size_t p = 0; p < group / 8; ++p) {
      const uint8_t* b = row + g * 8 * group + 64 * p;
      float* d = dst + g * group + 8 * p;
      for (size_t i = 0; i < 4; ++i) {
        d[i] = s * static_cast<float>((b[i] & 0x0f) - 8);
        d[4 + i] = s * static_cast<float>((b[i] >> 4) - 8);
      }
    }
  }
}

}  // namespace ember

namespace ember {

uint64_t i4_tensor_bytes(uint64_t out, uint64_t in, uint64_t group) { return q4_bytes(out, in, group); }

void decode_i4_f32(const uint8_t* data, size_t out, size_t in, size_t group, float* dst) {
  for (size_t o = 0; o < out; ++o) q4_dequantize_row(data, out, in, group, o, dst + o * in);
}

}  // namespace ember
