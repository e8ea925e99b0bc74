// The quantizer: symmetric int8 rounding against published numbers on real GPT-2 weights, and what
// quantize_model does to a model.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <cstring>
#include <random>

#include "ember/quantize.h"
#include "skip.h"
#include "test_paths.h"

TEST_CASE("absmax int8 on GPT-2's real h.0.attn.c_attn weight reproduces the published values") {
  // BASELINES.md (M. Labonne, "Introduction to Weight Quantization"): per-tensor absmax, scale =
  // max|W| / 127, round half to even. quantize_rows_symmetric over one row = the whole tensor.
  const std::string path = ember_test::shared_data_dir() + "/weights/gpt2-124M-fixtures/h0_attn_c_attn_weight_768x2304.f32le";
  if (!ember_test::need_file(path, "GPT-2's h.0 weight")) return;
  const size_t rows = 768, cols = 2304;
  std::vector<float> w(rows * cols);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(w.data()), static_cast<std::streamsize>(w.size() * 4));
  REQUIRE(f.gcount() == static_cast<std::streamsize>(w.size() * 4));
  std::vector<int8_t> q(w.size());
  float scale;
  ember::quantize_rows_symmetric(w.data(), 1, w.size(), q.data(), &scale);
  CHECK(scale * 127.0f == doctest::Approx(2.8436344).epsilon(1e-6));
  auto row = [&](size_t r, size_t c) { return static_cast<int>(q[r * cols + c]); };
  CHECK(std::vector<int>{row(0, 0), row(0, 1), row(0, 2)} == std::vector<int>{-21, -12, -4});
  CHECK(std::vector<int>{row(0, cols - 3), row(0, cols - 2), row(0, cols - 1)} == std::vector<int>{2, -3, 1});
  CHECK(std::vector<int>{row(1, 0), row(1, 1), row(1, 2)} == std::vector<int>{4, 7, 11});
  CHECK(std::vector<int>{row(2, 0), row(2, 1), row(2, 2)} == std::vector<int>{0, 3, 16});
  CHECK(std::vector<int>{row(rows - 1, 0), row(rows - 1, 1), row(rows - 1, 2)} == std::vector<int>{-18, -9, -11});
  CHECK(std::vector<int>{row(rows - 1, cols - 3), row(rows - 1, cols - 2), row(rows - 1, cols - 1)} == std::vector<int>{0, 0, 1});
  // Per output channel (what ember stores: rows of the [out, in] weight = columns here) is finer:
  // its reconstruction error is below the per-tensor one.
  std::vector<float> wt(w.size());
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) wt[c * rows + r] = w[r * cols + c];
  std::vector<float> scales(cols);
  ember::quantize_rows_symmetric(wt.data(), cols, rows, q.data(), scales.data());
  double e_channel = 0, e_tensor = 0;
  for (size_t c = 0; c < cols; ++c)
    for (size_t r = 0; r < rows; ++r) {
      const float x = wt[c * rows + r];
      e_channel += std::pow(x - scales[c] * q[c * rows + r], 2);
      e_tensor += std::pow(x - scale * std::nearbyint(x / scale), 2);
    }
  MESSAGE("rms error per channel " << std::sqrt(e_channel / w.size()) << ", per tensor " << std::sqrt(e_tensor / w.size()));
  CHECK(e_channel < e_tensor);
}

TEST_CASE("quantize_rows_symmetric: range, zero rows, and the error bound of half a step") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 1);
  const size_t rows = 9, cols = 77;
  std::vector<float> w(rows * cols), s(rows);
  for (float& x : w) x = nd(rng);
  for (size_t c = 0; c < cols; ++c) w[4 * cols + c] = 0.0f;  // an all-zero row
  std::vector<int8_t> q(w.size());
  ember::quantize_rows_symmetric(w.data(), rows, cols, q.data(), s.data());
  CHECK(s[4] == 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    int amax = 0;
    for (size_t c = 0; c < cols; ++c) {
      CHECK(q[r * cols + c] >= -127);
      amax = std::max(amax, std::abs(static_cast<int>(q[r * cols + c])));
      CHECK(std::fabs(w[r * cols + c] - s[r] * q[r * cols + c]) <= 0.5f * s[r] * (1 + 1e-6f));
    }
    if (r != 4) CHECK(amax == 127);  // the largest |w| maps to the end of the range
  }
}

namespace {
// m / 2 for odd m, rounded half to even, by integer arithmetic alone (no nearbyint): the two integers
// around m / 2 are (m - 1) / 2 and (m + 1) / 2 (exact: m is odd); the even one.
int half_to_even(int m) {
  const int lo = (m - 1) / 2, hi = (m + 1) / 2;
  return lo % 2 == 0 ? lo : hi;
}
}  // namespace

TEST_CASE("quantize_rows_symmetric rounds exact ties k + 0.5 half to even, positive and negative") {
  // Rows whose max |w| is 127 * s for s = 1/2, 1, 2 (the scale, exact): every other weight is s * m / 2
  // for an odd m in [-253, 253], so w / s lands exactly on k + 0.5. Half away from zero, half up or
  // truncation would give another integer for a half of them.
  CHECK(half_to_even(5) == 2);
  CHECK(half_to_even(-5) == -2);
  CHECK(half_to_even(3) == 2);
  CHECK(half_to_even(-3) == -2);
  CHECK(half_to_even(1) == 0);
  CHECK(half_to_even(-1) == 0);
  for (float s : {0.5f, 1.0f, 2.0f}) {
    CAPTURE(s);
    std::vector<float> w;
    std::vector<int> want;
    w.push_back(-127.0f * s);  // the row's max |w|: scale = s
    want.push_back(-127);
    for (int m = -253; m <= 253; m += 2) {
      w.push_back(s * static_cast<float>(m) / 2.0f);
      want.push_back(half_to_even(m));
    }
    std::vector<int8_t> q(w.size());
    float scale = 0.0f;
    ember::quantize_rows_symmetric(w.data(), 1, w.size(), q.data(), &scale);
    REQUIRE(scale == s);
    int wrong = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      CAPTURE(w[i]);
      CHECK(static_cast<int>(q[i]) == want[i]);
      wrong += static_cast<int>(q[i]) != want[i];
    }
    CHECK(wrong == 0);
  }
  // And the same through quantize_model: a weight of 2.5 in a row whose max is 127 is stored as 2.
  ember::ModelSpec m;
  m.config.n_vocab = 7;
  m.config.n_ctx = 4;
  m.config.n_embd = 4;
  m.config.n_head = 1;
  m.config.n_layer = 1;
  m.config.n_ff = 8;
  for (const auto& r : ember::required_tensors(m.config)) {
    ember::TensorData t;
    t.name = r.name;
    t.shape = r.shape;
    uint64_t n = 1;
    for (auto d : r.shape) n *= d;
    std::vector<float> v(n, 0.0f);
    for (uint64_t i = 0; i < n; i += 4) {  // rows of 4: 127, 2.5, -2.5, 1.5
      v[i] = 127.0f;
      if (i + 3 < n) v[i + 1] = 2.5f, v[i + 2] = -2.5f, v[i + 3] = 1.5f;
    }
    t.data.resize(n * 4);
    std::memcpy(t.data.data(), v.data(), n * 4);
    m.tensors.push_back(std::move(t));
  }
  REQUIRE(ember::quantize_model(m, {}).ok());
  size_t checked = 0;
  for (const auto& t : m.tensors) {
    if (t.dtype != ember::DType::kI8) continue;
    CAPTURE(t.name);
    REQUIRE(t.shape[1] % 4 == 0);
    const int8_t* q = reinterpret_cast<const int8_t*>(t.data.data());
    CHECK(std::vector<int>{q[0], q[1], q[2], q[3]} == std::vector<int>{127, 2, -2, 2});
    ++checked;
  }
  CHECK(checked >= 5);
}

TEST_CASE("quantize_model turns linear weights and embeddings to int8 and keeps the rest") {
  ember::ModelSpec s;
  s.config.n_vocab = 7;
  s.config.n_ctx = 4;
  s.config.n_embd = 4;
  s.config.n_head = 1;
  s.config.n_layer = 1;
  s.config.n_ff = 8;
  for (const auto& r : ember::required_tensors(s.config)) {
    ember::TensorData t;
    t.name = r.name;
    t.shape = r.shape;
    uint64_t n = 1;
    for (auto d : r.shape) n *= d;
    std::vector<float> v(n, 0.25f);
    t.data.resize(n * 4);
    std::memcpy(t.data.data(), v.data(), n * 4);
    s.tensors.push_back(std::move(t));
  }
  REQUIRE(ember::quantize_model(s, {}).ok());
  for (const auto& t : s.tensors) {
    CAPTURE(t.name);
    const bool want = t.name == "wte" || t.name.find("c_attn.weight") != std::string::npos ||
                      t.name.find("c_proj.weight") != std::string::npos || t.name.find("c_fc.weight") != std::string::npos;
    CHECK((t.dtype == ember::DType::kI8) == want);
    if (want) {
      CHECK(t.scales.size() == t.shape[0]);
      CHECK(static_cast<int8_t>(t.data[0]) == 127);
    }
  }
  CHECK(s.validate().ok());
}
