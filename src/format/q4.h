// The int4 weight layout (DType kI4) of the file, which the runtime reads in place.
//
// A weight matrix (out, in) holds values q in [-8, 7] with one scale per group of `group` consecutive
// input channels of a row: w[o][k] = scale(o, k / group) * q[o][k]. group is a multiple of 16 that
// divides in. The tensor's bytes are two regions:
//
//   nibbles: blocks of kQ4BlockRows = 16 output rows (out padded up to a multiple of 16 with zero
//            rows); block b, group g, pair p (8 input channels: k = g * group + 8 p + j, j < 8) is 64
//            bytes at  b * 8 in  +  g * 8 group  +  64 p;  its byte 4 r + i (row o = 16 b + r, i < 4)
//            holds u = q + 8 of  k = ... + i  in the low nibble and of  k = ... + 4 + i  in the high one;
//   scales:  after the nibbles (at byte padded_rows * in / 2): IEEE half floats, little-endian, finite
//            and non-negative, scale(o, g) at index (b * in / group + g) * 16 + r.
//
// So one 64-byte load holds 4 input channels of 16 rows in each nibble half: a 32-bit lane per row,
// the operand of a dot-product instruction (vpdpbusd, sdot) whose lanes are the 16 rows, and a row's
// group sum lands in its own lane with no horizontal reduction. A 32-byte half is 8 rows (AVX2), a
// 16-byte quarter 4 rows (NEON). Padding rows hold u = 8 (zero) and scale 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/status.h"

namespace ember {

constexpr size_t kQ4BlockRows = 16;
constexpr size_t kQ4GroupMultiple = 16;

inline uint64_t q4_padded_rows(uint64_t out) { return (out + kQ4BlockRows - 1) / kQ4BlockRows * kQ4BlockRows; }
inline uint64_t q4_nibble_bytes(uint64_t out, uint64_t in) { return q4_padded_rows(out) * in / 2; }
inline uint64_t q4_scale_count(uint64_t out, uint64_t in, uint64_t group) { return q4_padded_rows(out) * (in / group); }
// Total bytes of the tensor. The caller has checked that the products fit (the verifier does).
inline uint64_t q4_bytes(uint64_t out, uint64_t in, uint64_t group) {
  return q4_nibble_bytes(out, in) + 2 * q4_scale_count(out, in, group);
}
// Byte of (o, k) in the nibble region; *high: whether it is the high nibble.
inline uint64_t q4_byte_index(uint64_t in, uint64_t group, uint64_t o, uint64_t k, bool* high) {
  const uint64_t b = o / kQ4BlockRows, r = o % kQ4BlockRows, g = k / group, kk = k % group;
  const uint64_t p = kk / 8, j = kk % 8;
  *high = j >= 4;
  return b * 8 * in + g * 8 * group + 64 * p + 4 * r + (j % 4);
}
inline uint64_t q4_scale_index(uint64_t in, uint64_t group, uint64_t o, uint64_t g) {
  return (o / kQ4BlockRows * (in / group) + g) * kQ4BlockRows + o % kQ4BlockRows;
}

// The byte size of an int4 tensor of `shape` and `group` after checking them: a matrix, group a positive
// multiple of 16 dividing the row length, no overflow. T names the tensor in messages.
Result<uint64_t> q4_checked_bytes(const std::string& T, const std::vector<uint64_t>& shape, uint64_t group);
// Every group scale of a (checked, in-bounds) int4 tensor is a finite non-negative half float.
Status q4_check_scales(const std::string& T, const uint8_t* data, uint64_t out, uint64_t in, uint64_t group);

// q (out, in) in [-8, 7] and scales (out, in / group) as half floats -> the tensor bytes (q4_bytes).
void q4_pack(const int8_t* q, const uint16_t* scales, size_t out, size_t in, size_t group, uint8_t* dst);
// Value q[o][k] in [-8, 7] and the half-float scale of (o, g) of a packed tensor.
int q4_value(const uint8_t* data, size_t in, size_t group, size_t o, size_t k);
uint16_t q4_scale(const uint8_t* data, size_t out, size_t in, size_t group, size_t o, size_t g);
// Row o as floats (in values): scale * q, the one dequantization (embedding lookup, f32 views).
void q4_dequantize_row(const uint8_t* data, size_t out, size_t in, size_t group, size_t o, float* dst);

}  // namespace ember
