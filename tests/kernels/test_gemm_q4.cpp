// The int4 GEMM (Kernels::gemm_q4_tile, format/q4.h's layout): the reference against its definition
// evaluated independently (values and scales read through q4_value / q4_scale, sums in int64), every
// SIMD table against the reference bit for bit on random shapes with odd row tails, token tails, tiles
// and threads, at the int16 edge of the vpmaddubsw path, and against the float matmul of the
// dequantized weights within the quantization bound; plus the packing and the group quantizer.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "ember/config.h"
#include "ember/quantize.h"
#include "format/q4.h"
#include "kernels/gemm_q4.h"
#include "kernels/kernels.h"

namespace {

using ember::GemmQ4Args;
using ember::Kernels;

const Kernels& ref() { return ember::reference_kernels(); }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// A random int4 tensor: values in [lo, hi], half-float scales of magnitude ~`scale`.
struct Q4 {
  size_t out, in, group;
  std::vector<int8_t> q;
  std::vector<uint16_t> s;
  std::vector<uint8_t> bytes;
  const uint16_t* scales() const { return reinterpret_cast<const uint16_t*>(bytes.data() + ember::q4_nibble_bytes(out, in)); }
};

Q4 make_q4(size_t out, size_t in, size_t group, std::mt19937& rng, int lo = -8, int hi = 7, float scale = 0.01f) {
  Q4 t{out, in, group, std::vector<int8_t>(out * in), std::vector<uint16_t>(out * (in / group)), {}};
  std::uniform_int_distribution<int> dq(lo, hi);
  std::uniform_real_distribution<float> ds(0.1f * scale, scale);
  for (int8_t& v : t.q) v = static_cast<int8_t>(dq(rng));
  for (uint16_t& h : t.s) h = ember::f32_to_f16(ds(rng));
  t.bytes.assign(ember::q4_bytes(out, in, group), 0xAB);  // not 0: packing must write every byte it owns
  ember::q4_pack(t.q.data(), t.s.data(), out, in, group, t.bytes.data());
  return t;
}

std::vector<int8_t> rand_q8(size_t n, std::mt19937& rng, int lo = -127, int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float std = 1.0f) {
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// y through `K`'s tile over the whole product, or through gemm_q4_parallel on `pool`.
std::vector<float> run(const Kernels& K, const Q4& w, const std::vector<int8_t>& xq, const std::vector<float>& xs,
                       const float* bias, size_t batch, ember::ThreadPool* pool, bool parallel) {
  std::vector<float> y(batch * w.out, NAN);
  std::vector<int32_t> xg(batch * (w.in / w.group));
  const GemmQ4Args a{xq.data(), xs.data(), nullptr, w.bytes.data(), w.scales(), bias, y.data(), batch, w.in, w.out, w.group};
  if (parallel) {
    ember::gemm_q4_parallel(pool, K, a, xg.data());
  } else {
    ember::q8_group_sums(xq.data(), batch, w.in, w.group, xg.data());
    GemmQ4Args b = a;
    b.xg = xg.data();
    K.gemm_q4_tile(b, 0, batch, 0, w.out);
  }
  return y;
}

size_t count_different(const std::vector<float>& a, const std::vector<float>& b) {
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += !same_bits(a[i], b[i]);
  return bad;
}

}  // namespace

TEST_CASE("q4 packing: every value and scale reads back; padding rows are zero weights with zero scales") {
  std::mt19937 rng(1);
  for (size_t out : {1, 15, 16, 17, 40})
    for (size_t in : {16, 48, 64, 96, 256})
      for (size_t group : {16, 32, 48, 64, 96, 128}) {
        if (in % group) continue;
        const Q4 t = make_q4(out, in, group, rng);
        for (size_t o = 0; o < out; ++o)
          for (size_t k = 0; k < in; ++k) REQUIRE(ember::q4_value(t.bytes.data(), in, group, o, k) == t.q[o * in + k]);
        for (size_t o = 0; o < out; ++o)
          for (size_t g = 0; g < in / group; ++g)
            REQUIRE(ember::q4_scale(t.bytes.data(), out, in, group, o, g) == t.s[o * (in / group) + g]);
        for (size_t o = out; o < ember::q4_padded_rows(out); ++o) {
          for (size_t k = 0; k < in; ++k) REQUIRE(ember::q4_value(t.bytes.data(), in, group, o, k) == 0);
          for (size_t g = 0; g < in / group; ++g) REQUIRE(ember::q4_scale(t.bytes.data(), out, in, group, o, g) == 0);
        }
        // The public decoder: scale * q for every element.
        std::vector<float> f(out * in);
        ember::decode_i4_f32(t.bytes.data(), out, in, group, f.data());
        for (size_t o = 0; o < out; ++o)
          for (size_t k = 0; k < in; ++k)
            REQUIRE(f[o * in + k] == ember::f16_to_f32(t.s[o * (in / group) + k / group]) * static_cast<float>(t.q[o * in + k]));
        CHECK(ember::i4_tensor_bytes(out, in, group) == t.bytes.size());
      }
}

TEST_CASE("gemm_q4 reference: its definition, evaluated from the unpacked values with int64 sums") {
  std::mt19937 rng(2);
  for (size_t out : {1, 16, 19})
    for (size_t in : {16, 48, 96, 192})
      for (size_t group : {16, 32, 48, 96}) {
        if (in % group) continue;
        const size_t batch = 3;
        const Q4 w = make_q4(out, in, group, rng);
        const std::vector<int8_t> xq = rand_q8(batch * in, rng);
        const std::vector<float> xs = randn(batch, rng, 0.05f), bias = randn(out, rng);
        for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
          const std::vector<float> y = run(ref(), w, xq, xs, b, batch, nullptr, false);
          for (size_t t = 0; t < batch; ++t)
            for (size_t o = 0; o < out; ++o) {
              float acc = 0.0f;
              for (size_t g = 0; g < in / group; ++g) {
                int64_t s = 0;
                for (size_t k = g * group; k < (g + 1) * group; ++k)
                  s += int64_t{ember::q4_value(w.bytes.data(), in, group, o, k)} * xq[t * in + k];
                acc = std::fma(ember::f16_to_f32(ember::q4_scale(w.bytes.data(), out, in, group, o, g)), static_cast<float>(s), acc);
              }
              REQUIRE(same_bits(y[t * out + o], std::fma(xs[t], acc, b ? b[o] : 0.0f)));
            }
        }
      }
}

TEST_CASE("simd gemm_q4 equals the reference bit for bit (row tails, token tails, groups, tiles, threads)") {
  std::mt19937 rng(3);
  ember::ThreadPool pool(2);
  std::vector<const Kernels*> tables = ember::simd_kernels();
  tables.push_back(&ref());  // the parallel splitter over the reference too
  const size_t outs[] = {1, 5, 15, 16, 17, 31, 32, 33, 50};
  const size_t ins[] = {16, 32, 48, 64, 96, 160, 256, 768};
  const size_t groups[] = {16, 32, 48, 64, 80, 96, 128, 256};
  const size_t batches[] = {1, 2, 3, 4, 5, 7, 9};
  for (const Kernels* K : tables) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t in : ins)
      for (size_t group : groups) {
        if (in % group) continue;
        for (size_t out : outs)
          for (size_t batch : batches) {
            if (in > 256 && batch > 3) continue;
            CAPTURE(in);
            CAPTURE(group);
            CAPTURE(out);
            CAPTURE(batch);
            const Q4 w = make_q4(out, in, group, rng);
            const std::vector<int8_t> xq = rand_q8(batch * in, rng);
            const std::vector<float> xs = randn(batch, rng, 0.05f), bias = randn(out, rng);
            for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
              const std::vector<float> want = run(ref(), w, xq, xs, b, batch, nullptr, false);
              CHECK(count_different(run(*K, w, xq, xs, b, batch, nullptr, false), want) == 0);
              CHECK(count_different(run(*K, w, xq, xs, b, batch, &pool, true), want) == 0);
            }
          }
      }
  }
}

TEST_CASE("simd gemm_q4: tiles write exactly their part; token-tiled batches and GPT-2 shapes through the pool") {
  std::mt19937 rng(4);
  ember::ThreadPool pool(2);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    {
      const size_t batch = 7, in = 64, out = 45, group = 32;
      const Q4 w = make_q4(out, in, group, rng);
      const std::vector<int8_t> xq = rand_q8(batch * in, rng);
      const std::vector<float> xs = randn(batch, rng), bias = randn(out, rng);
      const std::vector<float> want = run(ref(), w, xq, xs, bias.data(), batch, nullptr, false);
      std::vector<int32_t> xg(batch * in / group);
      ember::q8_group_sums(xq.data(), batch, in, group, xg.data());
      for (int trial = 0; trial < 200; ++trial) {
        std::uniform_int_distribution<size_t> dt(0, batch), db(0, (out + 15) / 16);
        size_t t0 = dt(rng), t1 = dt(rng), b0 = db(rng), b1 = db(rng);
        if (t0 > t1) std::swap(t0, t1);
        if (b0 > b1) std::swap(b0, b1);
        const size_t o0 = std::min(out, 16 * b0), o1 = std::min(out, 16 * b1);
        std::vector<float> y(batch * out, -7.0f);
        K->gemm_q4_tile(GemmQ4Args{xq.data(), xs.data(), xg.data(), w.bytes.data(), w.scales(), bias.data(), y.data(), batch,
                                   in, out, group},
                        t0, t1, o0, o1);
        for (size_t t = 0; t < batch; ++t)
          for (size_t o = 0; o < out; ++o) {
            const bool inside = t >= t0 && t < t1 && o >= o0 && o < o1;
            REQUIRE(same_bits(y[t * out + o], inside ? want[t * out + o] : -7.0f));
          }
      }
    }
    const size_t shapes[][4] = {{65, 96, 130, 32}, {200, 64, 259, 64}, {1, 768, 2304, 32}, {3, 3072, 768, 32}, {130, 768, 300, 128}};
    for (const auto& s : shapes) {
      const size_t batch = s[0], in = s[1], out = s[2], group = s[3];
      CAPTURE(batch);
      CAPTURE(in);
      CAPTURE(out);
      const Q4 w = make_q4(out, in, group, rng);
      const std::vector<int8_t> xq = rand_q8(batch * in, rng);
      const std::vector<float> xs = randn(batch, rng, 0.02f), bias = randn(out, rng);
      const std::vector<float> want = run(ref(), w, xq, xs, bias.data(), batch, nullptr, false);
      for (ember::ThreadPool* tp : {static_cast<ember::ThreadPool*>(nullptr), &pool})
        CHECK(count_different(run(*K, w, xq, xs, bias.data(), batch, tp, true), want) == 0);
    }
  }
}

TEST_CASE("gemm_q4 at the int16 edge: every product -8 or 7 times +-127, in groups of 16 to 256") {
  // The vpmaddubsw path sums <= 8 pair sums of u * x (u = q + 8 in 0..15) in int16: at most 16 * 15 * 127
  // = 30480. Extreme signs in every pattern, against int64 sums of the definition.
  std::mt19937 rng(5);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t group : {16, 32, 256}) {
      const size_t in = 512, out = 33, batch = 5;
      Q4 w = make_q4(out, in, group, rng, -8, 7);
      std::uniform_int_distribution<int> pick(0, 1);
      for (int8_t& v : w.q) v = pick(rng) ? 7 : -8;
      for (size_t r = 0; r < 3; ++r) std::fill(w.q.begin() + r * in, w.q.begin() + (r + 1) * in, int8_t(r == 0 ? 7 : -8));
      ember::q4_pack(w.q.data(), w.s.data(), out, in, group, w.bytes.data());
      std::vector<int8_t> xq(batch * in);
      for (size_t i = 0; i < xq.size(); ++i) xq[i] = i < in ? 127 : (i < 2 * in ? -127 : (pick(rng) ? 127 : -127));
      const std::vector<float> xs(batch, 1.0f);
      const std::vector<float> want = run(ref(), w, xq, xs, nullptr, batch, nullptr, false);
      CHECK(count_different(run(*K, w, xq, xs, nullptr, batch, nullptr, false), want) == 0);
    }
  }
  // The reference itself at the edge: row of 7s against 127s, one group, scale 1: 7 * 127 * 32 exactly.
  Q4 w = make_q4(1, 32, 32, rng);
  std::fill(w.q.begin(), w.q.end(), int8_t{7});
  w.s[0] = ember::f32_to_f16(1.0f);
  ember::q4_pack(w.q.data(), w.s.data(), 1, 32, 32, w.bytes.data());
  const std::vector<int8_t> xq(32, 127);
  CHECK(run(ref(), w, xq, {1.0f}, nullptr, 1, nullptr, false)[0] == 7.0f * 127 * 32);
}

TEST_CASE("gemm_q4 against the float matmul of the dequantized weights: within float rounding of the int sums") {
  // y = xs * sum_g scale_g * s_g with exact integer s_g: the only errors are the float products and sums,
  // a relative (groups + 2) u of sum_g |scale_g s_g| (the fma chain) per output.
  std::mt19937 rng(6);
  const size_t batch = 4, in = 768, out = 40, group = 32;
  const Q4 w = make_q4(out, in, group, rng);
  const std::vector<int8_t> xq = rand_q8(batch * in, rng);
  const std::vector<float> xs = randn(batch, rng, 0.05f);
  const std::vector<float> y = run(ember::kernels(), w, xq, xs, nullptr, batch, nullptr, false);
  std::vector<float> wf(out * in);
  ember::decode_i4_f32(w.bytes.data(), out, in, group, wf.data());
  const double u = 1.0 / (1 << 24);
  for (size_t t = 0; t < batch; ++t)
    for (size_t o = 0; o < out; ++o) {
      double exact = 0.0, mag = 0.0;
      for (size_t k = 0; k < in; ++k) {
        exact += static_cast<double>(wf[o * in + k]) * xq[t * in + k];
        mag += std::fabs(static_cast<double>(wf[o * in + k]) * xq[t * in + k]);
      }
      exact *= xs[t];
      mag *= std::fabs(xs[t]);
      CHECK(std::fabs(y[t * out + o] - exact) <= (in / group + 2) * u * mag + 1e-30);
    }
}

TEST_CASE("quantize_rows_q4: values in [-8, 7], the least-error scale of its candidates, zero groups stay zero") {
  std::mt19937 rng(7);
  const size_t rows = 9, cols = 128, group = 32;
  std::vector<float> w = randn(rows * cols, rng, 0.02f);
  std::fill(w.begin() + 2 * cols, w.begin() + 2 * cols + group, 0.0f);  // row 2, group 0: all zero
  w[5 * cols + 3] = 0.5f;                                                // row 5 group 0: one outlier
  std::vector<int8_t> q(rows * cols);
  std::vector<uint16_t> s(rows * cols / group);
  ember::quantize_rows_q4(w.data(), rows, cols, group, q.data(), s.data());
  for (int8_t v : q) REQUIRE((v >= -8 && v <= 7));
  CHECK(s[2 * cols / group] == 0);
  for (size_t k = 0; k < group; ++k) CHECK(q[2 * cols + k] == 0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t g = 0; g < cols / group; ++g) {
      const float* x = w.data() + r * cols + g * group;
      const float sc = ember::f16_to_f32(s[r * cols / group + g]);
      float amax = 0.0f;
      double err = 0.0;
      for (size_t k = 0; k < group; ++k) {
        amax = std::max(amax, std::fabs(x[k]));
        const double d = x[k] - static_cast<double>(sc) * q[r * cols + g * group + k];
        err += d * d;
        // q is the rounding of x / scale, clamped
        if (sc > 0.0f) {
          const float v = std::nearbyint(x[k] * (1.0f / sc));
          CHECK(q[r * cols + g * group + k] == static_cast<int8_t>(std::min(7.0f, std::max(-8.0f, v))));
        }
      }
      if (amax == 0.0f) continue;
      // No worse than the plain max / 7 scale (the first candidate), whose error bounds it.
      const float s7 = ember::f16_to_f32(ember::f32_to_f16(amax / 7.0f));
      double err7 = 0.0;
      for (size_t k = 0; k < group; ++k) {
        const float v = std::min(7.0f, std::max(-8.0f, std::nearbyint(x[k] * (1.0f / s7))));
        const double d = x[k] - static_cast<double>(s7) * v;
        err7 += d * d;
      }
      CHECK(err <= err7);
      CHECK(sc >= amax / 9.0f * 0.999f);
      CHECK(sc <= amax / 7.0f * 1.001f);
    }
}
