// Kernels: the scalar references against float64 formulas, and the XNNPACK linear path against the
// scalar reference on random shapes (odd sizes and tails included).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/xnn/linear_xnn.h"
#include "core/threadpool.h"

namespace {
std::vector<float> randn(size_t n, std::mt19937& rng, float std = 1.0f) {
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}
}  // namespace

TEST_CASE("ref kernels match float64 formulas") {
  const ember::Kernels& K = ember::reference_kernels();
  std::mt19937 rng(1);
  for (size_t n : {1u, 3u, 8u, 17u, 64u, 771u}) {
    CAPTURE(n);
    std::vector<float> x = randn(n, rng, 3.0f), g = randn(n, rng), b = randn(n, rng), y(n);
    K.layernorm_f32(x.data(), g.data(), b.data(), y.data(), n, 1e-5f);
    double mean = 0, var = 0;
    for (float v : x) mean += v;
    mean /= n;
    for (float v : x) var += (v - mean) * (v - mean);
    var /= n;
    for (size_t i = 0; i < n; ++i) {
      const double want = (x[i] - mean) / std::sqrt(var + 1e-5) * g[i] + b[i];
      CHECK(std::fabs(y[i] - want) < 1e-5 * (1 + std::fabs(want)));
    }
    std::vector<float> t = x, e = x, r = x, s = x;
    K.gelu_tanh_f32(t.data(), n);
    K.gelu_erf_f32(e.data(), n);
    K.relu_f32(r.data(), n);
    K.softmax_f32(s.data(), n);
    double mx = x[0], sum = 0;
    for (float v : x) mx = std::max<double>(mx, v);
    for (float v : x) sum += std::exp(v - mx);
    for (size_t i = 0; i < n; ++i) {
      const double v = x[i];
      const double gt = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      const double ge = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
      CHECK(std::fabs(t[i] - gt) < 1e-6 * (1 + std::fabs(gt)));
      CHECK(std::fabs(e[i] - ge) < 1e-6 * (1 + std::fabs(ge)));
      CHECK(r[i] == (v > 0 ? x[i] : 0.0f));
      CHECK(std::fabs(s[i] - std::exp(v - mx) / sum) < 1e-6);
    }
    std::vector<float> a = randn(n, rng), c = randn(n, rng), acc = c;
    double dot = 0;
    for (size_t i = 0; i < n; ++i) dot += static_cast<double>(a[i]) * c[i];
    CHECK(std::fabs(K.dot_f32(a.data(), c.data(), n) - dot) < 1e-5 * (1 + std::sqrt(double(n))));
    K.axpy_f32(0.5f, a.data(), acc.data(), n);
    for (size_t i = 0; i < n; ++i) CHECK(acc[i] == doctest::Approx(c[i] + 0.5f * a[i]).epsilon(1e-6));
  }
  // GELU forms differ (that is why both exist): at x = 1 by about 1.6e-4.
  float t1 = 1.0f, e1 = 1.0f;
  K.gelu_tanh_f32(&t1, 1);
  K.gelu_erf_f32(&e1, 1);
  CHECK(std::fabs(t1 - e1) > 1e-4);
}

TEST_CASE("softmax is stable for large inputs") {
  std::vector<float> x = {1000.0f, 1000.0f, -1000.0f};
  ember::reference_kernels().softmax_f32(x.data(), x.size());
  CHECK(x[0] == doctest::Approx(0.5));
  CHECK(x[2] == 0.0f);
}

TEST_CASE("XNNPACK f32 linear matches the scalar reference on random shapes") {
  std::mt19937 rng(2);
  ember::ThreadPool pool(2);
  // Tolerance: float32 accumulation over `in` terms of N(0,1) x N(0, 0.3) products.
  const size_t shapes[][3] = {{1, 1, 1}, {1, 7, 5}, {3, 16, 48}, {5, 33, 17}, {64, 64, 192}, {7, 129, 65}, {2, 768, 97}};
  for (const auto& sh : shapes) {
    const size_t batch = sh[0], in = sh[1], out = sh[2];
    CAPTURE(batch);
    CAPTURE(in);
    CAPTURE(out);
    std::vector<float> x = randn(batch * in, rng), w = randn(out * in, rng, 0.3f), b = randn(out, rng);
    const std::vector<float> w_copy = w;
    std::vector<float> want(batch * out), got(batch * out, NAN);
    ember::linear_f32_ref(x.data(), w.data(), b.data(), want.data(), batch, in, out);
    auto lin = ember::LinearF32::create(w.data(), b.data(), in, out, "test");
    REQUIRE_MESSAGE(lin.ok(), lin.status().message());
    w.assign(w.size(), 0.0f);  // the operator packed its own copy
    for (ember::ThreadPool* tp : {static_cast<ember::ThreadPool*>(nullptr), &pool}) {
      REQUIRE(lin->run(batch, x.data(), got.data(), tp ? tp->xnnpack_pool() : nullptr).ok());
      double max_err = 0;
      for (size_t i = 0; i < got.size(); ++i) max_err = std::max(max_err, static_cast<double>(std::fabs(got[i] - want[i])));
      CHECK(max_err < 1e-5 * std::sqrt(static_cast<double>(in)) + 1e-6);
    }
    // Without bias: x W^T on the same weights (restored), and nothing added.
    w = w_copy;
    auto nb = ember::LinearF32::create(w.data(), nullptr, in, out, "nobias");
    REQUIRE(nb.ok());
    w.assign(w.size(), 0.0f);
    std::vector<float> want_nb(batch * out);
    ember::linear_f32_ref(x.data(), w_copy.data(), nullptr, want_nb.data(), batch, in, out);
    got.assign(got.size(), NAN);
    REQUIRE(nb->run(batch, x.data(), got.data(), nullptr).ok());
    double nb_err = 0, nb_rms = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      nb_err = std::max(nb_err, static_cast<double>(std::fabs(got[i] - want_nb[i])));
      nb_rms += double(want_nb[i]) * want_nb[i];
    }
    CHECK(nb_err < 1e-5 * std::sqrt(static_cast<double>(in)) + 1e-6);
    CHECK(std::sqrt(nb_rms / got.size()) > 0.1);  // x W^T is not zero here: the comparison means something
  }
}
