// Kernel tier of the tests: every SIMD table this CPU runs (simd_kernels(): "avx512" when the CPU has
// AVX-512 F/BW/VL/VNNI, "avxvnni" when it has AVX-VNNI, and "avx2", on x86-64 with AVX2+FMA; "neondot" when the CPU has the dot product, and "neon", on AArch64) against the scalar
// reference on random shapes with odd tails, with the tolerances stated at each check (u = 2^-24, the
// float unit roundoff); the int8 GEMM against the reference exactly and against the float matmul within
// the quantization bound derived below; every SIMD table against digests of the AVX2 results (the same
// bits on every ISA); and the dispatch itself. Under qemu-aarch64 (tools/test.sh) QEMU_CPU chooses the
// emulated CPU: the default "max" has the dot product, QEMU_CPU=cortex-a72 does not.
#include <doctest/doctest.h>

#include <cpuinfo.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/gemm_f32.h"
#include "kernels/gemm_q8.h"
#include "kernels/kernels.h"
#if defined(EMBER_KERNELS_REF)  // -Dkernels=ref: no SIMD tables, their entry points are not built
#elif defined(__x86_64__)
#include "kernels/avx2/kernels_avx2.h"
#include "kernels/avx512/kernels_avx512.h"
#elif defined(__aarch64__)
#include "kernels/neon/kernels_neon.h"
#endif

namespace {

using ember::GemmQ8Args;
using ember::Kernels;

constexpr double u = 1.0 / (1 << 24);  // float unit roundoff

const Kernels& ref() { return ember::reference_kernels(); }
// Every SIMD table of this CPU, then the reference (which some tests also run through their code path).
std::vector<const Kernels*> simd_and_ref() {
  std::vector<const Kernels*> t = ember::simd_kernels();
  t.push_back(&ref());
  return t;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float std = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> d(mean, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<int8_t> rand_q8(size_t n, std::mt19937& rng, int lo = -127, int hi = 127) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = static_cast<int8_t>(d(rng));
  return v;
}

// n in 1..70 (every tail of 8, 16 and 32 several times) and some large sizes.
std::vector<size_t> sizes() {
  std::vector<size_t> s;
  for (size_t n = 1; n <= 70; ++n) s.push_back(n);
  for (size_t n : {127, 128, 129, 255, 256, 257, 768, 1000, 1024, 3072, 4099}) s.push_back(n);
  return s;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// The `kernels` option this build was configured with, from meson's introspection data.
std::string build_kernels_option() {
  const char* dir = std::getenv("EMBER_BUILD_DIR");
  if (!dir) return "";
  std::ifstream f(std::string(dir) + "/meson-info/intro-buildoptions.json");
  if (!f) return "";
  const nlohmann::json opts = nlohmann::json::parse(f, nullptr, false);
  if (!opts.is_array()) return "";
  for (const auto& o : opts)
    if (o.value("name", "") == "kernels") return o.value("value", "");
  return "";
}

}  // namespace

TEST_CASE("dispatch: one table, chosen once; EMBER_KERNELS=ref forces the reference, a table name that table") {
  const std::vector<const Kernels*> simd = ember::simd_kernels();
  CHECK(std::string(ember::choose_kernels("ref").name) == "ref");
  const Kernels& best = simd.empty() ? ref() : *simd.front();
  CHECK(&ember::choose_kernels(nullptr) == &best);
  CHECK(&ember::choose_kernels("") == &best);
  CHECK(&ember::choose_kernels("auto") == &best);
  const char* env = std::getenv("EMBER_KERNELS");
  const bool forced_ref = env && std::string(env) == "ref";
  const Kernels* named = nullptr;  // EMBER_KERNELS naming a SIMD table of this CPU
  for (const Kernels* k : simd)
    if (env && std::string(env) == k->name) named = k;
  CHECK(&ember::kernels() == (forced_ref ? &ref() : named ? named : &best));
  for (const Kernels* k : simd) {
    CHECK(std::string(k->name) != "ref");
    CHECK(&ember::choose_kernels(k->name) == k);  // a table by name, to compare (EMBER_KERNELS=avx2)
  }
  CHECK(&ember::choose_kernels("no-such-table") == &best);
  MESSAGE("kernels() = " << std::string(ember::kernels().name) << ", simd tables on this CPU: " << simd.size());
}

TEST_CASE("dispatch: the best SIMD table of this CPU runs (avx512 / avxvnni / avx2 on x86-64, neon / neondot on AArch64) unless pinned to ref") {
  REQUIRE(cpuinfo_initialize());
#if defined(EMBER_KERNELS_REF)
  const bool cpu_simd = false;
  const std::vector<std::string> want_tables;
  const char* const cpu_desc = "-Dkernels=ref: no SIMD tables in this build";
#elif defined(__x86_64__)
  // The AVX-512 table, then the AVX-VNNI one, come first when the CPU and the build have them
  // (src/meson.build).
  const bool cpu_simd = cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c();
  const bool avx512 = cpu_simd && ember::cpu_has_avx512() && ember::avx512_kernels() != nullptr;
  const bool vnni = cpu_simd && ember::cpu_has_avxvnni() && ember::avxvnni_kernels() != nullptr;
  std::vector<std::string> want_tables;
  if (avx512) want_tables.push_back("avx512");
  if (vnni) want_tables.push_back("avxvnni");
  want_tables.push_back("avx2");
  std::string cpu_desc_s = "avx2+fma+f16c";
  if (cpu_simd && ember::cpu_has_avxvnni()) cpu_desc_s += vnni ? "+avxvnni" : "+avxvnni (not in this build)";
  if (cpu_simd && ember::cpu_has_avx512()) cpu_desc_s += avx512 ? "+avx512f/bw/vl/vnni" : "+avx512f/bw/vl/vnni (not in this build)";
  const char* const cpu_desc = cpu_desc_s.c_str();
#elif defined(__aarch64__)
  // NEON is part of every AArch64 CPU; the dot product table comes first when the CPU has it and the
  // build has it (not for a CPU layer naming a CPU without it, src/meson.build).
  const bool cpu_simd = true;
  const bool dot = cpuinfo_has_arm_neon_dot() && ember::neondot_kernels() != nullptr;
  const std::vector<std::string> want_tables = dot ? std::vector<std::string>{"neondot", "neon"} : std::vector<std::string>{"neon"};
  const char* const cpu_desc = cpuinfo_has_arm_neon_dot() ? (dot ? "neon+dotprod" : "neon+dotprod, not in this build") : "neon";
#else
  const bool cpu_simd = false;
  const std::vector<std::string> want_tables;
  const char* const cpu_desc = "no SIMD kernels for this CPU family";
#endif
  const std::string option = build_kernels_option();
  const char* env = std::getenv("EMBER_KERNELS");
  const bool forced_ref = env && std::string(env) == "ref";
  MESSAGE("cpu: " << std::string(cpu_desc) << " (simd " << cpu_simd << "), -Dkernels=" << option << ", EMBER_KERNELS="
                  << std::string(env ? env : "(unset)") << ", kernels() = " << std::string(ember::kernels().name));
  if (!cpu_simd || option == "ref" || forced_ref) {
    CHECK(std::string(ember::kernels().name) == "ref");
    return;
  }
  // meson test sets EMBER_BUILD_DIR. Run by hand the option is unknown: then only a build that compiled
  // SIMD tables is held to them.
  if (option.empty()) {
    MESSAGE("EMBER_BUILD_DIR unset: the build's -Dkernels option is unknown");
    if (ember::simd_kernels().empty()) return;
  }
  std::vector<std::string> names;
  for (const Kernels* k : ember::simd_kernels()) names.push_back(k->name);
  CHECK(names == want_tables);
  // The best table, unless EMBER_KERNELS names another one of them.
  const bool named = std::find(names.begin(), names.end(), std::string(env ? env : "")) != names.end();
  REQUIRE(std::string(ember::kernels().name) == (named ? std::string(env) : want_tables.front()));
  // The pointers themselves, not only the label, are not the reference's.
  for (const Kernels* K : ember::simd_kernels()) {
    CAPTURE(std::string(K->name));
    CHECK((K->gemm_q8 != ref().gemm_q8));
    CHECK((K->gemm_q8_tile != ref().gemm_q8_tile));
    CHECK((K->quantize_rows_q8 != ref().quantize_rows_q8));
    CHECK((K->softmax_f32 != ref().softmax_f32));
    CHECK((K->layernorm_f32 != ref().layernorm_f32));
    CHECK((K->gemm_f32_tile != ref().gemm_f32_tile));
  }
}

TEST_CASE("simd f32 kernels: relu and add equal the reference bit for bit") {
  std::mt19937 rng(11);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t n : sizes()) {
      CAPTURE(n);
      std::vector<float> x = randn(n, rng, 2.0f), y = randn(n, rng);
      // Specials where relu's NaN / signed-zero rule shows: x > 0 ? x : 0.
      const float specials[] = {-0.0f, 0.0f, std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY, 1e-40f, -1e-40f};
      for (size_t i = 0; i < n && i < 7; ++i) x[(i * 5) % n] = specials[i];
      std::vector<float> a = x, b = x;
      ref().relu_f32(a.data(), n);
      K->relu_f32(b.data(), n);
      for (size_t i = 0; i < n; ++i) CHECK(same_bits(a[i], b[i]));
      std::vector<float> ya = y, yb = y, xf = randn(n, rng);
      ref().add_f32(xf.data(), ya.data(), n);
      K->add_f32(xf.data(), yb.data(), n);
      for (size_t i = 0; i < n; ++i) CHECK(same_bits(ya[i], yb[i]));
    }
  }
}

TEST_CASE("simd f32 kernels: dot and axpy") {
  std::mt19937 rng(12);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t n : sizes()) {
      CAPTURE(n);
      std::vector<float> a = randn(n, rng), b = randn(n, rng), y = randn(n, rng);
      double exact = 0, mag = 0;
      for (size_t i = 0; i < n; ++i) {
        exact += static_cast<double>(a[i]) * b[i];
        mag += std::fabs(static_cast<double>(a[i]) * b[i]);
      }
      // dot: 32 partial sums of <= n/32 + 4 FMA steps each, then a 6-level tree:
      // |err| <= (n/32 + 10) u sum|a b|.
      const double tol = (n / 32.0 + 10.0) * u * mag;
      CHECK(std::fabs(K->dot_f32(a.data(), b.data(), n) - exact) <= tol);
      CHECK(std::fabs(ref().dot_f32(a.data(), b.data(), n) - exact) <= (n + 1.0) * u * mag);
      // axpy is one fused multiply-add per element: correctly rounded, |err| <= u |exact|; the reference
      // (multiply, then add) is within 2 u (|a x| + |y|) of it.
      const float alpha = 0.37f;
      std::vector<float> yk = y, yr = y;
      K->axpy_f32(alpha, a.data(), yk.data(), n);
      ref().axpy_f32(alpha, a.data(), yr.data(), n);
      for (size_t i = 0; i < n; ++i) {
        const double e = static_cast<double>(alpha) * a[i] + y[i];
        CHECK(std::fabs(yk[i] - e) <= u * std::fabs(e));
        CHECK(std::fabs(yk[i] - yr[i]) <= 2 * u * (std::fabs(alpha * a[i]) + std::fabs(y[i])));
      }
    }
  }
}

TEST_CASE("simd f32 kernels: layernorm") {
  std::mt19937 rng(13);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (float mean : {0.0f, 1000.0f}) {
      for (size_t n : sizes()) {
        CAPTURE(n);
        CAPTURE(mean);
        std::vector<float> x = randn(n, rng, 3.0f, mean), g = randn(n, rng), b = randn(n, rng), yk(n), yr(n);
        K->layernorm_f32(x.data(), g.data(), b.data(), yk.data(), n, 1e-5f);
        ref().layernorm_f32(x.data(), g.data(), b.data(), yr.data(), n, 1e-5f);
        double m = 0, var = 0;
        for (float v : x) m += v;
        m /= n;
        for (float v : x) var += (v - m) * (v - m);
        var /= n;
        const double rstd = 1.0 / std::sqrt(var + 1e-5);
        // Statistics in double in both; the float map differs by fma vs multiply-add and by at most one
        // ulp of float(mean) and float(rstd): |diff| <= 1e-6 ((|x| + |mean|) rstd |g| + |b|) (~17 u).
        for (size_t i = 0; i < n; ++i) {
          const double scale = (std::fabs(x[i]) + std::fabs(m)) * rstd * std::fabs(g[i]) + std::fabs(b[i]);
          CHECK(std::fabs(yk[i] - yr[i]) <= 1e-6 * scale);
          const double want = (x[i] - m) * rstd * g[i] + b[i];
          CHECK(std::fabs(yk[i] - want) <= 1e-6 * scale);
        }
      }
    }
  }
}

TEST_CASE("simd f32 kernels: softmax") {
  std::mt19937 rng(14);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    double worst = 0;
    for (float spread : {1.0f, 10.0f}) {
      for (size_t n : sizes()) {
        CAPTURE(n);
        std::vector<float> x = randn(n, rng, spread), yk = x, yr = x;
        K->softmax_f32(yk.data(), n);
        ref().softmax_f32(yr.data(), n);
        const float mx = *std::max_element(x.begin(), x.end());
        // Both exponentiate the same float d_i = x_i - max; exact softmax of those d_i:
        double sum = 0;
        for (float v : x) sum += std::exp(static_cast<double>(v - mx));
        double ksum = 0;
        for (size_t i = 0; i < n; ++i) {
          const double p = std::exp(static_cast<double>(x[i] - mx)) / sum;
          // exp within 8 u, the 16-lane sum within (n/16 + 8) u, the normalisation 2 u.
          const double rel = (18.0 + n / 16.0) * u;
          CHECK(std::fabs(yk[i] - p) <= rel * p + 1e-30);
          // The reference's serial sum is within n u.
          CHECK(std::fabs(yk[i] - yr[i]) <= (rel + (n + 2.0) * u) * p + 1e-30);
          worst = std::max(worst, std::fabs(yk[i] - p) / (p * u));
          ksum += yk[i];
        }
        CHECK(std::fabs(ksum - 1.0) <= 1e-5);
      }
    }
    MESSAGE(kname << " softmax: max relative error " << worst << " u");
    // Stable for large inputs; far-below-max inputs give exactly 0 as in the reference.
    std::vector<float> x = {1000.0f, 1000.0f, -1000.0f};
    K->softmax_f32(x.data(), x.size());
    CHECK(x[0] == doctest::Approx(0.5));
    CHECK(x[2] == 0.0f);
  }
}

TEST_CASE("activation backward: the reference against float64 derivatives, SIMD tables against the reference") {
  std::mt19937 rng(16);
  std::vector<float> x = randn(1001, rng, 3.0f);  // an odd tail; values near 0 where out / inp switches to 1/2
  const float special[] = {0.0f, 1e-7f, -1e-7f, 12.0f, -12.0f, 1e-4f, -30.0f, 5e-7f, -2e-6f};
  std::copy(std::begin(special), std::end(special), x.begin());
  const std::vector<float> dout = randn(x.size(), rng);
  const std::vector<float> ones(x.size(), 1.0f);
  struct Act {
    const char* name;
    void (*fwd)(float*, size_t);
    void (*bwd)(float*, const float*, const float*, const float*, size_t);
    void (*Kernels::*fwd_of)(float*, size_t);
    void (*Kernels::*bwd_of)(float*, const float*, const float*, const float*, size_t);
    double (*grad64)(double);
  };
  const double k = std::sqrt(2 / M_PI);
  static double kk;
  kk = k;
  const Act acts[] = {
      {"gelu_tanh", ref().gelu_tanh_f32, ref().gelu_tanh_backward_f32, &Kernels::gelu_tanh_f32, &Kernels::gelu_tanh_backward_f32,
       [](double v) {
         const double t = std::tanh(kk * (v + 0.044715 * v * v * v));
         return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * kk * (1 + 3 * 0.044715 * v * v);
       }},
      {"gelu_erf", ref().gelu_erf_f32, ref().gelu_erf_backward_f32, &Kernels::gelu_erf_f32, &Kernels::gelu_erf_backward_f32,
       [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI); }},
      {"relu", ref().relu_f32, ref().relu_backward_f32, &Kernels::relu_f32, &Kernels::relu_backward_f32,
       [](double v) { return v > 0 ? 1.0 : 0.0; }},
  };
  for (const Act& a : acts) {
    const std::string aname = a.name;
    CAPTURE(aname);
    std::vector<float> y = x, g(x.size()), gr(x.size());
    a.fwd(y.data(), y.size());
    // The reference: the float rounding of the exact derivative, times dout (one more rounding).
    a.bwd(g.data(), ones.data(), x.data(), y.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(std::fabs(g[i] - a.grad64(x[i])) <= 2 * u * std::fabs(a.grad64(x[i])) + 1e-30);
    a.bwd(gr.data(), dout.data(), x.data(), y.data(), x.size());
    for (size_t i = 0; i < x.size(); ++i) CHECK(gr[i] == static_cast<float>(g[i] * dout[i]));
    for (const Kernels* K : ember::simd_kernels()) {
      const std::string kname = K->name;
      CAPTURE(kname);
      std::vector<float> yk = x, gk(x.size());
      (K->*a.fwd_of)(yk.data(), yk.size());  // as in training: this table's forward output feeds its backward
      (K->*a.bwd_of)(gk.data(), dout.data(), x.data(), yk.data(), x.size());
      // SIMD GELU recovers its smooth factor from the forward's output (the forward's own error, a few
      // ulp of exp / erfc, divided by x) and evaluates phi with a polynomial exp: within 2e-6 (1 + |g|) of
      // the reference, the bound training's finite-difference test also holds (measured on x86-64, AVX2:
      // tanh 1.5e-6, erf 1.5e-7, relu 0).
      double worst = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        const double err = std::fabs(gk[i] - gr[i]) / (1.0 + std::fabs(gr[i]));
        worst = std::max(worst, err);
        CHECK(err <= 2e-6);
      }
      MESSAGE(kname << " " << aname << " backward: max |simd - ref| / (1 + |ref|) = " << worst);
    }
  }
}

TEST_CASE("log_sum_exp_f32 against long double, and stable where the naive sum overflows") {
  std::mt19937 rng(15);
  for (float spread : {1.0f, 30.0f}) {
    for (size_t n : sizes()) {
      CAPTURE(n);
      const std::vector<float> x = randn(n, rng, spread);
      long double s = 0;
      for (float v : x) s += std::exp(static_cast<long double>(v));
      const long double want = std::log(s);
      // Double arithmetic throughout: n + 4 rounding errors of 2^-53, relative to the terms' size.
      CHECK(std::fabs(static_cast<long double>(ember::log_sum_exp_f32(x.data(), n)) - want) <=
            (n + 4.0) * std::ldexp(1.0, -52) * (std::fabs(want) + 1));
    }
  }
  const float big[3] = {1000.0f, 1000.0f, -1000.0f};  // exp(1000) overflows even a double
  CHECK(ember::log_sum_exp_f32(big, 3) == doctest::Approx(1000.0 + std::log(2.0)).epsilon(1e-15));
  const float one = -3.5f;
  CHECK(ember::log_sum_exp_f32(&one, 1) == -3.5);
}

namespace {
// 0.5 v (1 + tanh u) = v / (1 + exp(-2u)): the second form has no cancellation for negative v, even in double.
double gelu_tanh64(double v) { return v / (1 + std::exp(-2 * std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }
double gelu_erf64(double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }
}  // namespace

TEST_CASE("simd f32 kernels: GELU (tanh and erf) against float64 and the reference") {
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    // A dense sweep of [-12, 12] (every region of both approximations, step 2^-10) plus random shapes.
    std::vector<float> sweep;
    for (int i = -12 * 1024; i <= 12 * 1024; ++i) sweep.push_back(i / 1024.0f);
    for (float v : {-30.0f, -20.0f, -10.5f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 20.0f, 100.0f}) sweep.push_back(v);
    for (int form = 0; form < 2; ++form) {
      auto kern = form == 0 ? K->gelu_tanh_f32 : K->gelu_erf_f32;
      auto rk = form == 0 ? ref().gelu_tanh_f32 : ref().gelu_erf_f32;
      auto f64 = form == 0 ? gelu_tanh64 : gelu_erf64;
      CAPTURE(form);
      std::vector<float> yk = sweep, yr = sweep;
      kern(yk.data(), yk.size());
      rk(yr.data(), yr.size());
      double max_abs = 0, max_rel = 0;
      for (size_t i = 0; i < sweep.size(); ++i) {
        const double v = sweep[i], want = f64(v), err = std::fabs(yk[i] - want);
        CAPTURE(v);
        // Stated accuracy: |err| <= 1e-6 |gelu(v)| + 1e-7 (relative in both tails, where the reference
        // loses relative accuracy to the cancellation in 1 + tanh / 1 + erf).
        CHECK(err <= 1e-6 * std::fabs(want) + 1e-7);
        // Against the reference: its own error (<= 1e-6 (1 + |gelu|), tests/unit/test_ops.cpp) plus ours.
        CHECK(std::fabs(yk[i] - yr[i]) <= 2e-6 * (1 + std::fabs(want)));
        max_abs = std::max(max_abs, err);
        if (std::fabs(want) > 1e-30) max_rel = std::max(max_rel, err / std::fabs(want));
      }
      MESSAGE(kname << std::string(form == 0 ? " gelu_tanh" : " gelu_erf") << ": max abs error " << max_abs
                      << ", max rel error " << max_rel);
      std::mt19937 rng(15 + form);
      for (size_t n : sizes()) {
        CAPTURE(n);
        std::vector<float> x = randn(n, rng, 3.0f), a = x, b = x;
        kern(a.data(), n);
        rk(b.data(), n);
        for (size_t i = 0; i < n; ++i) CHECK(std::fabs(a[i] - b[i]) <= 2e-6 * (1 + std::fabs(f64(x[i]))));
      }
    }
  }
}

TEST_CASE("quantize_rows_q8: reference semantics") {
  // scale = max|x| / 127, round half to even, zero rows give scale 0.
  const float x[] = {1.5f, 2.5f, -3.5f, 127.0f, -0.5f, 0.5f, 126.5f, 0.0f};
  int8_t q[8];
  float s;
  ref().quantize_rows_q8(x, 1, 8, q, &s);
  CHECK(s == 1.0f);
  const int8_t want[] = {2, 2, -4, 127, 0, 0, 126, 0};
  for (int i = 0; i < 8; ++i) CHECK(q[i] == want[i]);
  const float z[5] = {0, -0.0f, 0, 0, 0};
  ref().quantize_rows_q8(z, 1, 5, q, &s);
  CHECK(s == 0.0f);
  for (int i = 0; i < 5; ++i) CHECK(q[i] == 0);
}

TEST_CASE("quantize_rows_q8 on every table rounds exact ties half to even (scales 1/2, 1, 2; vector body and tail)") {
  // Each row: max |x| = 127 s (the scale s, exact), the rest s * m / 2 for odd m, so x / s = m / 2 lands
  // on k + 0.5, positive and negative, in every lane of the vector body and of the tail. Expected: m / 2
  // rounded half to even by integer arithmetic (no nearbyint): of (m - 1) / 2 and (m + 1) / 2 the even one.
  auto half_to_even = [](int m) { return ((m - 1) / 2) % 2 == 0 ? (m - 1) / 2 : (m + 1) / 2; };
  for (const Kernels* K : simd_and_ref()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t n : {2u, 7u, 9u, 15u, 17u, 31u, 33u, 37u, 254u}) {
      CAPTURE(n);
      const float scales[3] = {0.5f, 1.0f, 2.0f};
      std::vector<float> x(3 * n);
      std::vector<int> want(3 * n);
      for (size_t r = 0; r < 3; ++r) {
        const float s = scales[r];
        for (size_t i = 0; i < n; ++i) {
          const int m = static_cast<int>((i * 37 + r * 11) % 254) - 127;  // -127 .. 126
          const int odd = m % 2 != 0 ? m : (m >= 0 ? m + 1 : m - 1);     // odd, |odd| <= 127
          x[r * n + i] = s * static_cast<float>(odd) / 2.0f;
          want[r * n + i] = half_to_even(odd);
        }
        const size_t at = (r * 5) % n;  // the max, somewhere else in each row
        x[r * n + at] = (r % 2 ? -127.0f : 127.0f) * s;
        want[r * n + at] = r % 2 ? -127 : 127;
      }
      std::vector<int8_t> q(3 * n, 99);
      std::vector<float> sc(3, NAN);
      K->quantize_rows_q8(x.data(), 3, n, q.data(), sc.data());
      for (size_t r = 0; r < 3; ++r) CHECK(sc[r] == scales[r]);
      int wrong = 0;
      for (size_t i = 0; i < 3 * n; ++i) wrong += q[i] != want[i];
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("simd quantize_rows_q8 equals the reference bit for bit") {
  std::mt19937 rng(21);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t n : sizes()) {
      CAPTURE(n);
      const size_t rows = 5;
      std::vector<float> x = randn(rows * n, rng, 2.0f);
      for (size_t i = 0; i < n; ++i) x[2 * n + i] = 0.0f;  // a zero row
      // A row with max |x| = 127 (scale exactly 1) and exact ties k + 0.5: round half to even.
      for (size_t i = 0; i < n; ++i) x[3 * n + i] = static_cast<float>(static_cast<int>(i % 250) - 125) + 0.5f;
      x[3 * n] = -127.0f;
      x[4 * n + n / 2] = 1e4f;  // an outlier: most of the row rounds to 0
      std::vector<int8_t> qk(rows * n, 99), qr(rows * n, 98);
      std::vector<float> sk(rows, NAN), sr(rows, NAN);
      K->quantize_rows_q8(x.data(), rows, n, qk.data(), sk.data());
      ref().quantize_rows_q8(x.data(), rows, n, qr.data(), sr.data());
      for (size_t r = 0; r < rows; ++r) CHECK(same_bits(sk[r], sr[r]));
      CHECK(qk == qr);
      // |x - scale q| <= scale / 2 (+ the division's rounding, 127 u scale), q in [-127, 127].
      for (size_t r = 0; r < rows; ++r)
        for (size_t i = 0; i < n; ++i) {
          CHECK(qk[r * n + i] >= -127);
          CHECK(std::fabs(x[r * n + i] - sk[r] * qk[r * n + i]) <= sk[r] * (0.5 + 128 * u) + 1e-30);
        }
    }
  }
}

namespace {

// Runs one int8 GEMM through `fn` into a NaN-filled y and returns it.
template <class F>
std::vector<float> run_gemm(F fn, size_t batch, size_t out) {
  std::vector<float> y(batch * out, NAN);
  fn(y.data());
  return y;
}

void check_same(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += !same_bits(a[i], b[i]);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("simd gemm_q8 equals the reference bit for bit (odd shapes, tails, tiles, threads)") {
  std::mt19937 rng(31);
  ember::ThreadPool pool(2);
  std::vector<size_t> ins;
  for (size_t n = 1; n <= 70; ++n) ins.push_back(n);
  for (size_t n : {95, 96, 97, 127, 128, 129, 768, 3072}) ins.push_back(n);
  const size_t outs[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 67};
  const size_t batches[] = {1, 2, 3, 5};
  const std::vector<const Kernels*> tables = simd_and_ref();  // the parallel splitter over the reference too
  for (const Kernels* K : tables) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t in : ins)
      for (size_t out : outs)
        for (size_t batch : batches) {
          if (in > 128 && (out > 9 || batch > 2)) continue;  // keep the large-`in` cases quick
          CAPTURE(in);
          CAPTURE(out);
          CAPTURE(batch);
          std::vector<int8_t> xq = rand_q8(batch * in, rng), w = rand_q8(out * in, rng);
          std::vector<float> xs = randn(batch, rng, 0.02f), ws = randn(out, rng, 0.01f), bias = randn(out, rng);
          for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
            const GemmQ8Args a0{xq.data(), xs.data(), w.data(), ws.data(), b, nullptr, batch, in, out};
            auto want = run_gemm([&](float* y) { ref().gemm_q8(xq.data(), xs.data(), batch, w.data(), ws.data(), b, y, in, out); },
                                 batch, out);
            check_same(run_gemm([&](float* y) { K->gemm_q8(xq.data(), xs.data(), batch, w.data(), ws.data(), b, y, in, out); },
                                batch, out),
                       want);
            check_same(run_gemm([&](float* y) { GemmQ8Args a = a0; a.y = y; ember::gemm_q8_parallel(&pool, *K, a); },
                                batch, out),
                       want);
          }
        }
  }
}

TEST_CASE("simd gemm_q8: tiles write exactly their part; larger batches and GPT-2 shapes through the pool") {
  std::mt19937 rng(32);
  ember::ThreadPool pool(2);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    {
      const size_t batch = 7, in = 45, out = 23;
      std::vector<int8_t> xq = rand_q8(batch * in, rng), w = rand_q8(out * in, rng);
      std::vector<float> xs = randn(batch, rng), ws = randn(out, rng), bias = randn(out, rng);
      std::vector<float> want(batch * out);
      ref().gemm_q8(xq.data(), xs.data(), batch, w.data(), ws.data(), bias.data(), want.data(), in, out);
      for (int trial = 0; trial < 200; ++trial) {
        std::uniform_int_distribution<size_t> dt(0, batch), dox(0, out);
        size_t t0 = dt(rng), t1 = dt(rng), o0 = dox(rng), o1 = dox(rng);
        if (t0 > t1) std::swap(t0, t1);
        if (o0 > o1) std::swap(o0, o1);
        std::vector<float> y(batch * out, -7.0f);
        K->gemm_q8_tile(GemmQ8Args{xq.data(), xs.data(), w.data(), ws.data(), bias.data(), y.data(), batch, in, out},
                        t0, t1, o0, o1);
        for (size_t t = 0; t < batch; ++t)
          for (size_t o = 0; o < out; ++o) {
            const bool inside = t >= t0 && t < t1 && o >= o0 && o < o1;
            CHECK(same_bits(y[t * out + o], inside ? want[t * out + o] : -7.0f));
          }
      }
    }
    // Token-tiled path (batch > kGemmQ8TokenTile) with tails in every dimension, and GPT-2 sizes.
    const size_t shapes[][3] = {{65, 33, 130}, {200, 100, 259}, {1, 768, 2304}, {3, 3072, 768}, {130, 768, 300}};
    for (const auto& s : shapes) {
      const size_t batch = s[0], in = s[1], out = s[2];
      CAPTURE(batch);
      CAPTURE(in);
      CAPTURE(out);
      std::vector<int8_t> xq = rand_q8(batch * in, rng), w = rand_q8(out * in, rng);
      std::vector<float> xs = randn(batch, rng, 0.02f), ws = randn(out, rng, 0.01f), bias = randn(out, rng);
      const GemmQ8Args a0{xq.data(), xs.data(), w.data(), ws.data(), bias.data(), nullptr, batch, in, out};
      auto want = run_gemm([&](float* y) { GemmQ8Args a = a0; a.y = y; ref().gemm_q8_tile(a, 0, batch, 0, out); }, batch, out);
      for (ember::ThreadPool* tp : {static_cast<ember::ThreadPool*>(nullptr), &pool})
        check_same(run_gemm([&](float* y) { GemmQ8Args a = a0; a.y = y; ember::gemm_q8_parallel(tp, *K, a); }, batch, out),
                   want);
    }
  }
}

TEST_CASE("simd gemm_q8_tile: every row and token remainder of the register tiles (avx512: 8 rows x 3 tokens, 64-byte steps)") {
  // Tiles as gemm_q8_parallel and attention_q8 cut them: batches of 1..3 tokens (the decode forms) and
  // 4..13 (token tiles of 2 and 3 with every remainder), output ranges [o0, o1) whose length and start
  // leave every remainder of 8- and 4-row tiles, and rows of every length around the 32- and 64-byte steps.
  std::mt19937 rng(34);
  const size_t ins[] = {1, 31, 63, 64, 65, 127, 129, 191, 200, 768};
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t in : ins)
      for (size_t batch = 1; batch <= 13; ++batch) {
        const size_t out = 29;
        CAPTURE(in);
        CAPTURE(batch);
        std::vector<int8_t> xq = rand_q8(batch * in, rng), w = rand_q8(out * in, rng);
        std::vector<float> xs = randn(batch, rng, 0.02f), ws = randn(out, rng, 0.01f), bias = randn(out, rng);
        std::vector<float> want(batch * out);
        ref().gemm_q8(xq.data(), xs.data(), batch, w.data(), ws.data(), bias.data(), want.data(), in, out);
        for (const auto& oo : {std::pair<size_t, size_t>{0, out}, {1, 28}, {3, 20}, {5, 16}, {8, 9}, {0, 7}, {2, 29}}) {
          CAPTURE(oo.first);
          CAPTURE(oo.second);
          const size_t t0 = batch > 3 ? 1 : 0;  // a token range not starting at 0 too
          std::vector<float> y(batch * out, -7.0f);
          K->gemm_q8_tile(GemmQ8Args{xq.data(), xs.data(), w.data(), ws.data(), bias.data(), y.data(), batch, in, out},
                          t0, batch, oo.first, oo.second);
          size_t bad = 0;
          for (size_t t = 0; t < batch; ++t)
            for (size_t o = 0; o < out; ++o) {
              const bool inside = t >= t0 && o >= oo.first && o < oo.second;
              bad += !same_bits(y[t * out + o], inside ? want[t * out + o] : -7.0f);
            }
          CHECK(bad == 0);
        }
      }
  }
}

TEST_CASE("gemm_q8 at the int16 saturation edge: all products +-127 * +-127, and the longest rows") {
  // vpmaddubsw pairs reach 2 * 127 * 127 = 32258 <= 32767 and never saturate; check against int64 sums.
  // 5 tokens: avxvnni takes its offset form (x + 128, from 4 tokens) as well as the sign trick (below 4,
  // the 3-token case). At in = 133144, the longest row Kernels::gemm_q8 allows, 127 * 127 * in is just
  // below 2^31 while the offset form's sums of (x + 128) * w pass it: they wrap and must still come out
  // exact.
  std::mt19937 rng(33);
  for (const size_t batch : {size_t{3}, size_t{5}})
    for (const size_t in : {size_t{3072 + 17}, size_t{133144}}) {
      CAPTURE(batch);
      CAPTURE(in);
      const size_t out = 6;
      std::vector<int8_t> xq(batch * in), w(out * in);
      std::bernoulli_distribution coin(0.5);
      for (size_t t = 0; t < batch; ++t)
        for (size_t i = 0; i < in; ++i) xq[t * in + i] = t == 0 ? 127 : (t == 1 ? -127 : (coin(rng) ? 127 : -127));
      for (size_t o = 0; o < out; ++o)
        for (size_t i = 0; i < in; ++i) w[o * in + i] = o == 0 ? 127 : (o == 1 ? -127 : (coin(rng) ? 127 : -127));
      const std::vector<float> xs(batch, 1.0f), ws(out, 1.0f);
      const std::vector<const Kernels*> tables = simd_and_ref();
      for (const Kernels* K : tables) {
        const std::string kname = K->name;
        CAPTURE(kname);
        std::vector<float> y(batch * out);
        K->gemm_q8(xq.data(), xs.data(), batch, w.data(), ws.data(), nullptr, y.data(), in, out);
        for (size_t t = 0; t < batch; ++t)
          for (size_t o = 0; o < out; ++o) {
            int64_t s = 0;
            for (size_t i = 0; i < in; ++i) s += int64_t{xq[t * in + i]} * w[o * in + i];
            CHECK(y[t * out + o] == static_cast<float>(s));
          }
      }
    }
}

TEST_CASE("gemm_q8 against the float matmul: within the derived quantization bound") {
  // Real x (batch, in) and W (out, in); both quantized per row by quantize_rows_q8 (the model's weights
  // use the same symmetric per-output-channel scheme): x_i = xs (qx_i + ex_i), W_i = ws (qw_i + ew_i) with
  // |e| <= e_max = 1/2 + 128 u (the float division's rounding). The kernel returns xs ws sum qx qw, so
  //   |y - y_q| = xs ws |sum (qx ew + ex qw + ex ew)| <= xs ws (e_max sum (|qx_i| + |qw_i|) + in e_max^2),
  // plus the float epilogue (xs*ws, float(acc), fma): 4 u (xs ws |acc| + |bias|).
  // That worst case is linear in `in`; independent rounding errors give ~ sqrt(in), checked too.
  std::mt19937 rng(41);
  ember::ThreadPool pool(2);
  const double e_max = 0.5 + 128 * u;
  const size_t shapes[][3] = {{1, 768, 2304}, {4, 3072, 768}, {17, 129, 75}, {64, 768, 64}, {2, 5, 3}};
  for (const Kernels* K : {&ember::kernels(), &ref()}) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (const auto& s : shapes) {
      const size_t batch = s[0], in = s[1], out = s[2];
      CAPTURE(batch);
      CAPTURE(in);
      CAPTURE(out);
      std::vector<float> x = randn(batch * in, rng), W = randn(out * in, rng, 0.05f), bias = randn(out, rng);
      for (size_t i = 0; i < x.size(); i += 97) x[i] *= 8.0f;  // a few activation outliers
      std::vector<int8_t> xq(batch * in), wq(out * in);
      std::vector<float> xs(batch), ws(out), y(batch * out);
      K->quantize_rows_q8(x.data(), batch, in, xq.data(), xs.data());
      K->quantize_rows_q8(W.data(), out, in, wq.data(), ws.data());
      ember::gemm_q8_parallel(&pool, *K, GemmQ8Args{xq.data(), xs.data(), wq.data(), ws.data(), bias.data(), y.data(), batch, in, out});
      double ratio_sum = 0, worst_of_bound = 0;
      for (size_t t = 0; t < batch; ++t)
        for (size_t o = 0; o < out; ++o) {
          double exact = bias[o], sum_q = 0, var_q = 0;
          int64_t acc = 0;
          for (size_t i = 0; i < in; ++i) {
            exact += static_cast<double>(x[t * in + i]) * W[o * in + i];
            const double qx = xq[t * in + i], qw = wq[o * in + i];
            sum_q += std::fabs(qx) + std::fabs(qw);
            var_q += (qx * qx + qw * qw) / 12.0;
            acc += xq[t * in + i] * wq[o * in + i];
          }
          const double d = static_cast<double>(xs[t]) * ws[o];
          const double bound = d * (e_max * sum_q + in * e_max * e_max) + 4 * u * (d * std::fabs(double(acc)) + std::fabs(bias[o]));
          const double err = std::fabs(y[t * out + o] - exact);
          CHECK(err <= bound);
          worst_of_bound = std::max(worst_of_bound, err / bound);
          ratio_sum += err * err / (d * d * var_q);
        }
      // Mean squared error over the predicted variance of uniform rounding errors, xs^2 ws^2 sum (qx^2 +
      // qw^2) / 12: near 1 (loose limits; a biased or wrong kernel lands far outside).
      const double ms = ratio_sum / (batch * out);
      MESSAGE(kname << " " << batch << "x" << in << "x" << out << ": max |err| / bound = " << worst_of_bound
                      << ", mean err^2 / predicted var = " << ms);
      if (batch * out >= 64) {
        CHECK(ms > 0.5);
        CHECK(ms < 1.5);
      }
    }
  }
}

namespace {

// Inputs made by integer arithmetic only, k * 2^-e for uniform integers k (std::normal_distribution goes
// through libm's log, which may round differently on another ISA).
std::vector<float> exact_floats(size_t n, std::mt19937& rng, int e, float offset = 0.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(static_cast<float>(static_cast<int32_t>(rng() % 2097153) - 1048576), -e) + offset;
  return v;
}

struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  }
  template <class T>
  void add(const std::vector<T>& v) { add(v.data(), v.size() * sizeof(T)); }
};

// One FNV-1a digest per kernel of its outputs on every size of sizes().
std::vector<std::pair<std::string, uint64_t>> kernel_digests(const Kernels& K) {
  Fnv relu, gelu_tanh, gelu_erf, softmax, dot, axpy, add, layernorm, quant;
  std::mt19937 rng(77);
  for (size_t n : sizes()) {
    const std::vector<float> x = exact_floats(n, rng, 17), y = exact_floats(n, rng, 18);  // |x| <= 8, |y| <= 4
    std::vector<float> v = x;
    K.relu_f32(v.data(), n);
    relu.add(v);
    v = x;
    K.gelu_tanh_f32(v.data(), n);
    gelu_tanh.add(v);
    v = x;
    K.gelu_erf_f32(v.data(), n);
    gelu_erf.add(v);
    v = exact_floats(n, rng, 15);  // |v| <= 32: softmax over a wide range of exponents
    K.softmax_f32(v.data(), n);
    softmax.add(v);
    const float d = K.dot_f32(x.data(), y.data(), n);
    dot.add(&d, sizeof d);
    v = y;
    K.axpy_f32(0.37f, x.data(), v.data(), n);
    axpy.add(v);
    v = y;
    K.add_f32(x.data(), v.data(), n);
    add.add(v);
    const std::vector<float> xm = exact_floats(n, rng, 17, 1000.0f);  // mean far from 0
    std::vector<float> out(n);
    for (const std::vector<float>* in : {&x, &xm}) {
      K.layernorm_f32(in->data(), y.data(), x.data(), out.data(), n, 1e-5f);
      layernorm.add(out);
    }
    std::vector<int8_t> q(3 * n);
    std::vector<float> s(3), xq = exact_floats(3 * n, rng, 17);
    K.quantize_rows_q8(xq.data(), 3, n, q.data(), s.data());
    quant.add(q);
    quant.add(s);
  }
  return {{"relu", relu.h},       {"gelu_tanh", gelu_tanh.h}, {"gelu_erf", gelu_erf.h},
          {"softmax", softmax.h}, {"dot", dot.h},             {"axpy", axpy.h},
          {"add", add.h},         {"layernorm", layernorm.h}, {"quantize_rows_q8", quant.h}};
}

}  // namespace

TEST_CASE("simd kernels give the same bits on every ISA: avx2 = neon = neondot (digests of the AVX2 results)") {
  // The NEON kernels are lane-for-lane transcriptions of the AVX2 ones (src/kernels/neon/kernels_neon.h),
  // so a model computes the same logits on an ARM board as on an AVX2 x86-64. These digests were made by
  // the avx2 table on x86-64; a kernel change that alters them must change every ISA's version alike,
  // and then the new digests (printed below) go here.
  const std::vector<std::pair<std::string, uint64_t>> want = {
      {"relu", 0x57e5cbbeba80c411ull},     {"gelu_tanh", 0x0258734644f5ec07ull}, {"gelu_erf", 0xd77e962a80f879c9ull},
      {"softmax", 0x5d2f1be04177b531ull},  {"dot", 0x850ba8a464b4cfd7ull},       {"axpy", 0xf825ef8adc88061aull},
      {"add", 0xe6f83917ca61b263ull},      {"layernorm", 0x5eee27458bf9baf1ull}, {"quantize_rows_q8", 0x765544d6224830eeull}};
  const std::vector<const Kernels*> simd = ember::simd_kernels();
  if (simd.empty()) MESSAGE("no SIMD table on this CPU / build: nothing to compare");
  for (const Kernels* K : simd) {
    const std::string kname = K->name;
    CAPTURE(kname);
    const auto got = kernel_digests(*K);
    REQUIRE(got.size() == want.size());
    std::string listing;
    for (size_t i = 0; i < got.size(); ++i) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "{\"%s\", 0x%016llxull}, ", got[i].first.c_str(), static_cast<unsigned long long>(got[i].second));
      listing += buf;
      CAPTURE(got[i].first);
      CHECK(got[i].second == want[i].second);
    }
    MESSAGE(kname << " digests: " << listing);
  }
}

// ---- The int8 KV cache: wsum_rows_q8 and attention_q8 (kernels/attention.h) ----

namespace {

// The cached rows of one head as the session writes them: quantize_rows_q8 of each row.
struct CachedRows {
  std::vector<int8_t> q;
  std::vector<float> scale;
};
CachedRows cache_rows(const Kernels& K, const std::vector<float>& x, size_t n, size_t d) {
  CachedRows c{std::vector<int8_t>(n * d), std::vector<float>(n)};
  K.quantize_rows_q8(x.data(), n, d, c.q.data(), c.scale.data());
  return c;
}

// Row counts (positions) and row lengths (head dims): every tail of the 8/32/64-column blocks and of the
// 4-row GEMM tiles, GPT-2's 64, the default model's 32, the golden models' 12 and 16.
const size_t kAttnN[] = {1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 64, 65, 255, 257, 1000};
std::vector<size_t> attn_dims() {
  std::vector<size_t> s;
  for (size_t d = 1; d <= 40; ++d) s.push_back(d);
  for (size_t d : {47, 48, 63, 64, 65, 71, 72, 80, 95, 96, 97, 127, 128, 129, 200}) s.push_back(d);
  return s;
}

}  // namespace

TEST_CASE("wsum_rows_q8: every table against float64 and the SIMD tables against the reference bit for bit") {
  // The kernel's contract (kernels.h): per column an fma chain from +0 over j = 0.. with weight p[j] * scale[j],
  // so every implementation gives the same bits. Against the exact sum: one rounding of each weight and one
  // of each fma step, |err| <= (n + 1) u sum_j |p_j s_j v_ji| (the serial-summation bound).
  std::mt19937 rng(51);
  const std::vector<const Kernels*> tables = simd_and_ref();
  for (size_t d : attn_dims())
    for (size_t n : {0, 1, 2, 3, 5, 8, 17, 64, 129, 300}) {
      CAPTURE(d);
      CAPTURE(n);
      const std::vector<int8_t> v = rand_q8(n * d, rng, -128, 127);  // any int8 value, -128 too
      std::vector<float> p = randn(n, rng), scale = randn(n, rng, 0.05f);
      for (float& x : p) x = std::fabs(x) / (n + 1.0f);
      if (n > 2) p[1] = -p[1];  // a negative weight: the kernel does not assume softmax output
      std::vector<float> want(d, NAN);
      ref().wsum_rows_q8(p.data(), v.data(), scale.data(), n, d, want.data());
      for (const Kernels* K : tables) {
        const std::string kname = K->name;
        CAPTURE(kname);
        std::vector<float> got(d + 3, -7.0f);  // 3 guard floats: nothing is written past d
        K->wsum_rows_q8(p.data(), v.data(), scale.data(), n, d, got.data());
        for (size_t i = 0; i < d; ++i) {
          double exact = 0, mag = 0;
          for (size_t j = 0; j < n; ++j) {
            exact += static_cast<double>(p[j]) * scale[j] * v[j * d + i];
            mag += std::fabs(static_cast<double>(p[j]) * scale[j] * v[j * d + i]);
          }
          CHECK(std::fabs(got[i] - exact) <= (n + 1.0) * u * mag);
          CHECK(same_bits(got[i], want[i]));
        }
        for (size_t i = d; i < d + 3; ++i) CHECK(got[i] == -7.0f);
      }
    }
}

TEST_CASE("scores_f32 and wsum_rows_f32 (the f32 cache's attention): the bits of their row-by-row definitions") {
  // kernels.h: scores_f32 is this table's dot_f32 per row times the scale; wsum_rows_f32 is per column an
  // fma chain from out's value over j = 0.. (written out below, independent of every table), so all tables agree
  // bit for bit, and within the serial-summation bound (n + 1) u sum_j |p_j v_ji| of the exact sum.
  std::mt19937 rng(53);
  const std::vector<const Kernels*> tables = simd_and_ref();
  for (const Kernels* K : tables) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t d : attn_dims())
      for (size_t n : {0, 1, 2, 3, 5, 8, 17, 64, 129}) {
        CAPTURE(d);
        CAPTURE(n);
        const std::vector<float> q = randn(d, rng), k = randn(n * d, rng), v = randn(n * d, rng);
        std::vector<float> p = randn(n, rng);
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        std::vector<float> s(n + 3, -7.0f);  // 3 guard floats: nothing is written past n
        K->scores_f32(q.data(), k.data(), n, d, scale, s.data());
        for (size_t j = 0; j < n; ++j) CHECK(same_bits(s[j], K->dot_f32(q.data(), k.data() + j * d, d) * scale));
        for (size_t j = n; j < n + 3; ++j) CHECK(s[j] == -7.0f);
        // Accumulating onto a random out, and in two calls (rows [0, a), then [a, n)): the same bits.
        const std::vector<float> out0 = randn(d, rng);
        std::vector<float> got(d + 3, -7.0f), split(d + 3, -7.0f);
        std::copy(out0.begin(), out0.end(), got.begin());
        std::copy(out0.begin(), out0.end(), split.begin());
        K->wsum_rows_f32(p.data(), n ? v.data() : nullptr, n, d, got.data());
        const size_t a = n / 3;
        K->wsum_rows_f32(p.data(), a ? v.data() : nullptr, a, d, split.data());
        K->wsum_rows_f32(p.data() + a, n > a ? v.data() + a * d : nullptr, n - a, d, split.data());
        for (size_t i = 0; i < d; ++i) {
          float want = out0[i];
          double exact = out0[i], mag = std::fabs(out0[i]);
          for (size_t j = 0; j < n; ++j) {
            want = std::fma(p[j], v[j * d + i], want);
            exact += static_cast<double>(p[j]) * v[j * d + i];
            mag += std::fabs(static_cast<double>(p[j]) * v[j * d + i]);
          }
          CHECK(same_bits(got[i], want));
          CHECK(same_bits(split[i], want));
          CHECK(std::fabs(got[i] - exact) <= (n + 1.0) * u * mag);
        }
        for (size_t i = d; i < d + 3; ++i) CHECK((got[i] == -7.0f && split[i] == -7.0f));
      }
  }
}

TEST_CASE("attention kernels at every alignment of their rows: the bits of their definitions, and softmax the base SIMD table's") {
  // The session's KV cache and scores come from calloc (16-byte aligned), and the avx512 table's
  // wsum_rows_f32 takes a cache-line-aligned path for rows starting inside a 64-byte line: rows at every
  // float offset from a 64-byte boundary, head sizes on and off its 16-column blocks. softmax_f32 has a
  // stated error, not a definition, so it is held to the bits of the last SIMD table (avx2 / neon, which
  // the digest test above pins) at every length and offset.
  std::mt19937 rng(55);
  const std::vector<const Kernels*> simd = ember::simd_kernels();
  const std::vector<const Kernels*> tables = simd_and_ref();
  const size_t pad = 16;
  for (const Kernels* K : tables) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t d : {size_t{16}, size_t{32}, size_t{48}, size_t{64}, size_t{80}, size_t{128}, size_t{33}})
      for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{37}})
        for (size_t off = 0; off < 16; ++off) {
          CAPTURE(d);
          CAPTURE(n);
          CAPTURE(off);
          // 64-byte aligned storage, the rows starting `off` floats in.
          std::vector<float> kbuf(n * d + 2 * pad + 16), vbuf(n * d + 2 * pad + 16), obuf(d + 2 * pad + 32);
          auto aligned = [&](std::vector<float>& b) {
            float* p = b.data();
            while (reinterpret_cast<uintptr_t>(p) % 64 != 0) ++p;
            return p + off;
          };
          float* k = aligned(kbuf);
          float* v = aligned(vbuf);
          float* out = aligned(obuf) + pad;  // guard floats on both sides
          for (size_t i = 0; i < n * d; ++i) k[i] = randn(1, rng)[0], v[i] = randn(1, rng)[0];
          const std::vector<float> q = randn(d, rng), p = randn(n, rng), out0 = randn(d, rng);
          std::vector<float> s(n);
          K->scores_f32(q.data(), k, n, d, 0.125f, s.data());
          size_t bad = 0;
          for (size_t j = 0; j < n; ++j) bad += !same_bits(s[j], K->dot_f32(q.data(), k + j * d, d) * 0.125f);
          for (size_t i = 0; i < pad; ++i) out[-1 - static_cast<ptrdiff_t>(i)] = out[d + i] = -7.0f;
          std::copy(out0.begin(), out0.end(), out);
          K->wsum_rows_f32(p.data(), v, n, d, out);
          for (size_t i = 0; i < d; ++i) {
            float want = out0[i];
            for (size_t j = 0; j < n; ++j) want = std::fma(p[j], v[j * d + i], want);
            bad += !same_bits(out[i], want);
          }
          for (size_t i = 0; i < pad; ++i) bad += out[-1 - static_cast<ptrdiff_t>(i)] != -7.0f || out[d + i] != -7.0f;
          CHECK(bad == 0);
        }
  }
  if (simd.empty()) return;
  const Kernels& base = *simd.back();
  for (const Kernels* K : simd)
    for (size_t n = 1; n <= 80; ++n)
      for (size_t off = 0; off < 16; off += 3) {
        std::vector<float> buf(n + 32), want(n);
        float* x = buf.data();
        while (reinterpret_cast<uintptr_t>(x) % 64 != 0) ++x;
        x += off;
        const std::vector<float> x0 = randn(n, rng, 3.0f);
        std::copy(x0.begin(), x0.end(), want.begin());
        base.softmax_f32(want.data(), n);
        std::copy(x0.begin(), x0.end(), x);
        K->softmax_f32(x, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; ++i) bad += !same_bits(x[i], want[i]);
        CAPTURE(std::string(K->name));
        CAPTURE(n);
        CAPTURE(off);
        CHECK(bad == 0);
      }
}

TEST_CASE("attention_f32_queries: a block of queries in chunks of rows gives each query attention_f32's bits") {
  // kernels/attention.h: the prefill path (nq queries of one head, the cached rows in chunks) must equal
  // attention_f32 run per query, bit for bit, on every table: chunks shorter and longer than a query's
  // row count, a chunk of 1, and strided queries, scores and outputs as the session lays them out.
  std::mt19937 rng(54);
  const std::vector<const Kernels*> tables = simd_and_ref();
  for (const Kernels* K : tables) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t d : {size_t{8}, size_t{32}, size_t{64}, size_t{67}})
      for (size_t n0 : {size_t{1}, size_t{5}, size_t{40}})
        for (size_t nq : {size_t{1}, size_t{3}, size_t{8}})
          for (size_t chunk : {size_t{1}, size_t{7}, size_t{64}}) {
            CAPTURE(d);
            CAPTURE(n0);
            CAPTURE(nq);
            CAPTURE(chunk);
            const size_t n_max = n0 + nq - 1, ldq = 3 * d + 5, lds = n_max + 9, ldo = d + 4;
            const std::vector<float> q = randn(nq * ldq, rng), k = randn(n_max * d, rng), v = randn(n_max * d, rng);
            std::vector<float> scores(nq * lds, -7.0f), out(nq * ldo, -7.0f);
            ember::attention_f32_queries(*K, ember::AttentionF32Queries{q.data(), ldq, k.data(), v.data(), n0, nq, d,
                                                                        scores.data(), lds, out.data(), ldo, chunk});
            for (size_t i = 0; i < nq; ++i) {
              CAPTURE(i);
              const size_t n = n0 + i;
              std::vector<float> s1(n), o1(d);
              ember::attention_f32(*K, q.data() + i * ldq, k.data(), v.data(), n, d, s1.data(), o1.data());
              size_t bad = 0;
              for (size_t j = 0; j < n; ++j) bad += !same_bits(scores[i * lds + j], s1[j]);
              for (size_t j = 0; j < d; ++j) bad += !same_bits(out[i * ldo + j], o1[j]);
              for (size_t j = n; j < lds; ++j) bad += scores[i * lds + j] != -7.0f;  // nothing past its rows
              for (size_t j = d; j < ldo; ++j) bad += out[i * ldo + j] != -7.0f;
              CHECK(bad == 0);
            }
          }
  }
}

TEST_CASE("attention_q8: q.k scores bit for bit, softmax and output within the stated bounds of the reference") {
  // attention_q8 = quantize_rows_q8 (bit-identical on every table) + gemm_q8_tile with batch 1 (exact integer
  // sums, same epilogue: bit-identical) + softmax_f32 + wsum_rows_q8 (bit-identical). So a SIMD table differs
  // from the reference only through softmax_f32: per weight |p_K - p_ref| <= ((18 + n/16) + (n + 2)) u p (the
  // bound of the softmax test above), and the output by sum_j |p_K - p_ref|_j |s_j v_ji| plus each side's
  // summation error (n + 1) u sum_j p_j |s_j v_ji|.
  std::mt19937 rng(52);
  for (const Kernels* K : ember::simd_kernels()) {
    const std::string kname = K->name;
    CAPTURE(kname);
    for (size_t d : attn_dims())
      for (size_t n : kAttnN) {
        if (d > 72 && n > 65 && n != 1000) continue;  // keep the suite quick under qemu
        CAPTURE(d);
        CAPTURE(n);
        const std::vector<float> q = randn(d, rng, 1.5f), k = randn(n * d, rng), v = randn(n * d, rng);
        const CachedRows kc = cache_rows(ref(), k, n, d), vc = cache_rows(ref(), v, n, d);
        // The scores stage alone, exactly as attention_q8 runs it.
        std::vector<int8_t> q8(d);
        float sq;
        K->quantize_rows_q8(q.data(), 1, d, q8.data(), &sq);
        const float xs = sq * (1.0f / std::sqrt(static_cast<float>(d)));
        std::vector<float> sk(n, NAN), sr(n, NAN);
        K->gemm_q8_tile(GemmQ8Args{q8.data(), &xs, kc.q.data(), kc.scale.data(), nullptr, sk.data(), 1, d, n}, 0, 1, 0, n);
        ref().gemm_q8_tile(GemmQ8Args{q8.data(), &xs, kc.q.data(), kc.scale.data(), nullptr, sr.data(), 1, d, n}, 0, 1, 0, n);
        check_same(sk, sr);
        // The whole attention.
        std::vector<int8_t> q8k(d), q8r(d);
        std::vector<float> pk(n), pr(n), ok(d + 2, -7.0f), orf(d);
        ember::attention_q8(*K, {q.data(), q8k.data(), kc.q.data(), kc.scale.data(), vc.q.data(), vc.scale.data(), n, d, pk.data(), ok.data()});
        ember::attention_q8(ref(), {q.data(), q8r.data(), kc.q.data(), kc.scale.data(), vc.q.data(), vc.scale.data(), n, d, pr.data(), orf.data()});
        CHECK(q8k == q8r);
        const double rel = ((18.0 + n / 16.0) + (n + 2.0)) * u;
        for (size_t j = 0; j < n; ++j) CHECK(std::fabs(pk[j] - pr[j]) <= rel * pr[j] + 1e-30);
        for (size_t i = 0; i < d; ++i) {
          double dp = 0, mag = 0;
          for (size_t j = 0; j < n; ++j) {
            const double sv = std::fabs(static_cast<double>(vc.scale[j]) * vc.q[j * d + i]);
            dp += std::fabs(pk[j] - pr[j]) * sv;
            mag += pr[j] * sv;
          }
          CHECK(std::fabs(ok[i] - orf[i]) <= dp + 2 * (n + 2.0) * u * mag + 1e-30);
        }
        CHECK(ok[d] == -7.0f);
        CHECK(ok[d + 1] == -7.0f);
      }
  }
}

TEST_CASE("attention_q8 against float64 attention of the unquantized rows: within the derived quantization bound") {
  // Every row x = s (q + e) with |e| <= e_max = 1/2 + 128 u (quantize_rows_q8's rounding). Score j is
  // (q . k_j) / sqrt(d); quantizing query and key moves it by at most
  //   delta_j = (sum_i |q_i| |ek_ji| + |k_ji| |eq_i| + |eq_i| |ek_ji|) / sqrt(d)
  // with |ek_ji| <= ks_j e_max and |eq_i| <= sq e_max (plus ~d u of float epilogue, below). With delta =
  // max_j delta_j, each softmax weight moves by a factor within [e^-2delta, e^2delta], so
  //   |out_i - exact_i| <= (e^{2 delta} - 1) sum_j p_j |v_ji| + e_max sum_j p_j vs_j  (+ float rounding),
  // the second term from the values' own quantization. Checked for the reference and the best table; the
  // mean error over the bound is printed (typically far below 1: rounding errors are not all worst case).
  std::mt19937 rng(53);
  const double e_max = 0.5 + 128 * u;
  for (const Kernels* K : {&ember::kernels(), &ref()}) {
    const std::string kname = K->name;
    CAPTURE(kname);
    double worst = 0, sum_ratio = 0;
    size_t count = 0;
    for (size_t d : {12, 16, 31, 32, 64, 65, 128})
      for (size_t n : {1, 2, 7, 64, 257, 1000}) {
        CAPTURE(d);
        CAPTURE(n);
        // Keys correlated with the query so that attention is peaked (scores up to ~8), as in trained models.
        std::vector<float> q = randn(d, rng), k = randn(n * d, rng), v = randn(n * d, rng, 2.0f);
        for (size_t j = 0; j < n; j += 3)
          for (size_t i = 0; i < d; ++i) k[j * d + i] += 0.15f * q[i] * (j % 5);
        const CachedRows kc = cache_rows(*K, k, n, d), vc = cache_rows(*K, v, n, d);
        std::vector<int8_t> q8(d);
        std::vector<float> p(n), out(d);
        ember::attention_q8(*K, {q.data(), q8.data(), kc.q.data(), kc.scale.data(), vc.q.data(), vc.scale.data(), n, d, p.data(), out.data()});
        float sq;
        std::vector<int8_t> qq(d);
        ref().quantize_rows_q8(q.data(), 1, d, qq.data(), &sq);
        // float64 attention of the original rows.
        std::vector<double> s(n);
        double mx = -INFINITY, delta = 0;
        for (size_t j = 0; j < n; ++j) {
          double dot = 0, dj = 0;
          for (size_t i = 0; i < d; ++i) {
            dot += static_cast<double>(q[i]) * k[j * d + i];
            const double ek = kc.scale[j] * e_max, eq = sq * e_max;
            dj += std::fabs(q[i]) * ek + std::fabs(k[j * d + i]) * eq + eq * ek;
          }
          s[j] = dot / std::sqrt(static_cast<double>(d));
          // + the float epilogue and the scale product (~4 u of the score) and softmax_f32's error.
          delta = std::max(delta, dj / std::sqrt(static_cast<double>(d)) + 4 * u * std::fabs(s[j]) + (20.0 + n) * u);
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (size_t j = 0; j < n; ++j) z += std::exp(s[j] - mx);
        for (size_t i = 0; i < d; ++i) {
          double exact = 0, pv = 0, pvs = 0;
          for (size_t j = 0; j < n; ++j) {
            const double pj = std::exp(s[j] - mx) / z;
            exact += pj * v[j * d + i];
            pv += pj * std::fabs(v[j * d + i]);
            pvs += pj * vc.scale[j];
          }
          const double bound = std::expm1(2 * delta) * pv + e_max * pvs + 2 * (n + 2.0) * u * (pv + pvs);
          const double err = std::fabs(out[i] - exact);
          CHECK(err <= bound);
          worst = std::max(worst, err / bound);
          sum_ratio += err / bound;
          ++count;
        }
      }
    MESSAGE(kname << " attention_q8 vs float64: max |err| / bound " << worst << ", mean " << sum_ratio / count);
    CHECK(sum_ratio / count < 0.5);  // a biased kernel would sit near the bound everywhere
  }
}

TEST_CASE("attention_q8 gives the same bits on every ISA: avx2 = neon = neondot (digest of the AVX2 results)") {
  // As the kernel digests above: integer-built inputs, every (d, n) of the shape lists; the digest was made
  // by the avx2 table on x86-64 and printed below when it differs.
  const uint64_t want = 0x1c17893447eb2619ull;
  const std::vector<const Kernels*> simd = ember::simd_kernels();
  if (simd.empty()) MESSAGE("no SIMD table on this CPU / build: nothing to compare");
  for (const Kernels* K : simd) {
    const std::string kname = K->name;
    CAPTURE(kname);
    Fnv h;
    std::mt19937 rng(78);
    for (size_t d : attn_dims())
      for (size_t n : kAttnN) {
        if (d > 72 && n > 65) continue;
        const std::vector<float> q = exact_floats(d, rng, 18), k = exact_floats(n * d, rng, 18), v = exact_floats(n * d, rng, 19);
        const CachedRows kc = cache_rows(*K, k, n, d), vc = cache_rows(*K, v, n, d);
        std::vector<int8_t> q8(d);
        std::vector<float> p(n), out(d);
        ember::attention_q8(*K, {q.data(), q8.data(), kc.q.data(), kc.scale.data(), vc.q.data(), vc.scale.data(), n, d, p.data(), out.data()});
        h.add(p);
        h.add(out);
        std::vector<float> w(d);
        K->wsum_rows_q8(k.data(), vc.q.data(), v.data(), std::min(n, d), d, w.data());  // arbitrary weights and scales
        h.add(w);
      }
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%016llxull", static_cast<unsigned long long>(h.h));
    MESSAGE(kname << " attention_q8 digest: " << buf);
    CHECK(h.h == want);
  }
}

TEST_CASE("gemm_f32_tile: every SIMD table gives the reference's bits (every tile height and width, bias, accumulate)") {
  std::mt19937 rng(31);
  for (const Kernels* K : ember::simd_kernels()) {
    CAPTURE(std::string(K->name));
    for (size_t kc : {0, 1, 2, 7, 64, 255, 256}) {
      const std::vector<float> a = randn(6 * 300, rng), b = randn(256 * 16, rng), bias = randn(16, rng);
      for (size_t mr = 1; mr <= 6; ++mr)
        for (size_t nr = 1; nr <= 16; ++nr)
          for (int mode = 0; mode < 4; ++mode) {
            CAPTURE(kc); CAPTURE(mr); CAPTURE(nr); CAPTURE(mode);
            const bool acc = mode & 1;
            const float* bi = (mode & 2) ? bias.data() : nullptr;
            // A strided both ways (rows 300 apart, or columns 6 apart); C with a margin that must stay.
            const size_t rs = (mode & 1) ? 1 : 300, cs = (mode & 1) ? 6 : 1, ldc = 19;
            std::vector<float> c0 = randn(6 * ldc, rng), want = c0, got = c0;
            ref().gemm_f32_tile(mr, nr, kc, a.data(), rs, cs, b.data(), want.data(), ldc, acc, bi);
            K->gemm_f32_tile(mr, nr, kc, a.data(), rs, cs, b.data(), got.data(), ldc, acc, bi);
            REQUIRE(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
            for (size_t r = 0; r < 6; ++r)
              for (size_t j = 0; j < ldc; ++j)
                if (r >= mr || j >= nr) REQUIRE(same_bits(got[r * ldc + j], c0[r * ldc + j]));
          }
    }
  }
}

TEST_CASE("gemm_f32 (training's gradient products): every strided form against float64, with tails; the same bits "
          "at 1 and 2 threads and on every table") {
  std::mt19937 rng(7);
  ember::ThreadPool p1(1), p2(2);
  double worst = 0;
  const size_t shapes[][3] = {{1, 1, 1}, {5, 17, 3}, {6, 16, 8}, {13, 33, 300}, {64, 48, 16}, {7, 65, 129}, {50, 20, 513}};
  for (auto& sh : shapes) {
    const size_t m = sh[0], n = sh[1], k = sh[2];
    CAPTURE(m); CAPTURE(n); CAPTURE(k);
    std::vector<float> a = randn(m * k, rng), b = randn(k * n, rng), bias = randn(n, rng);
    std::vector<float> pack(ember::gemm_pack_floats(k, n));
    // A row-major / column-major, B row-major / column-major: the forms linear_backward uses and more.
    for (int form = 0; form < 4; ++form) {
      const ember::MatRef A = (form & 1) ? ember::MatRef{a.data(), 1, m} : ember::MatRef{a.data(), k, 1};
      const ember::MatRef Bm = (form & 2) ? ember::MatRef{b.data(), 1, k} : ember::MatRef{b.data(), n, 1};
      for (int acc = 0; acc < 2; ++acc) {
        CAPTURE(form); CAPTURE(acc);
        const std::vector<float> c0 = randn(m * n, rng);
        std::vector<float> want = c0;
        ember::gemm_f32_ref(m, n, k, A, Bm, acc ? nullptr : bias.data(), want.data(), n, acc);
        std::vector<float> first;
        for (const Kernels* K : simd_and_ref())
          for (ember::ThreadPool* pool : {&p1, &p2})
            for (int packed = 0; packed < 2; ++packed) {
              CAPTURE(std::string(K->name)); CAPTURE(pool->n_threads()); CAPTURE(packed);
              std::vector<float> c = c0, rowsum(m, 1.0f);
              if (packed) {
                ember::gemm_pack_b(k, n, Bm, pack.data());
                ember::gemm_f32_packed(pool, *K, m, n, k, A, pack.data(), acc ? nullptr : bias.data(), c.data(), n, acc != 0,
                                       rowsum.data());
              } else {
                ember::gemm_f32(pool, *K, m, n, k, A, Bm, acc ? nullptr : bias.data(), c.data(), n, acc != 0, pack.data(),
                                rowsum.data());
              }
              if (first.empty()) first = c;
              REQUIRE(std::memcmp(first.data(), c.data(), c.size() * sizeof(float)) == 0);
              for (size_t i = 0; i < m; ++i) {
                double s = 1.0, mag = 1.0;
                for (size_t p = 0; p < k; ++p) s += A.p[i * A.rs + p * A.cs], mag += std::fabs(A.p[i * A.rs + p * A.cs]);
                REQUIRE(std::fabs(rowsum[i] - s) <= 1e-6 * (k + 1) * mag);
              }
            }
        // f32 accumulation: |error| <= (k + 2) u sum |terms|, checked as 1e-6 sqrt(k + 1) of the magnitude.
        for (size_t i = 0; i < m; ++i)
          for (size_t j = 0; j < n; ++j) {
            double mag = std::fabs(c0[i * n + j]) + (acc ? 0 : std::fabs(bias[j]));
            for (size_t p = 0; p < k; ++p) mag += std::fabs(A.p[i * A.rs + p * A.cs] * Bm.p[p * Bm.rs + j * Bm.cs]);
            const double e = std::fabs(first[i * n + j] - want[i * n + j]) / mag;
            worst = std::max(worst, e);
            REQUIRE(e < 1e-6 * std::sqrt(double(k) + 1));
          }
      }
    }
  }
  MESSAGE("gemm_f32: worst error / sum |terms| = " << worst);
}

TEST_CASE("layernorm_backward_f32 and softmax_backward_f32: every table against float64 formulas, the SIMD tables "
          "with the reference's bits") {
  std::mt19937 rng(41);
  for (size_t n : {1, 2, 7, 8, 31, 64, 129, 768}) {
    CAPTURE(n);
    const std::vector<float> x = randn(n, rng, 2.0f, 0.5f), g = randn(n, rng), dy = randn(n, rng), dx0 = randn(n, rng);
    double m = 0, v = 0;
    for (float xi : x) m += xi;
    m /= n;
    for (float xi : x) v += (xi - m) * (xi - m);
    v /= n;
    const float mean = static_cast<float>(m), rstd = static_cast<float>(1.0 / std::sqrt(v + 1e-5));
    // float64: dx = rstd (dn - mean(dn) - xhat mean(dn xhat)), dg += dy xhat, db += dy.
    double sdn = 0, sdnx = 0;
    std::vector<double> xh(n);
    for (size_t i = 0; i < n; ++i) {
      xh[i] = (x[i] - double(mean)) * rstd;
      sdn += double(dy[i]) * g[i];
      sdnx += double(dy[i]) * g[i] * xh[i];
    }
    std::vector<float> want_dx, want_dg;
    for (const Kernels* K : simd_and_ref()) {
      CAPTURE(std::string(K->name));
      for (int acc = 0; acc < 2; ++acc) {
        std::vector<float> dx = dx0, dg(n, 0.25f), db(n, -0.5f);
        K->layernorm_backward_f32(dx.data(), acc != 0, dg.data(), db.data(), dy.data(), x.data(), g.data(), mean, rstd, n);
        for (size_t i = 0; i < n; ++i) {
          const double e = rstd * (double(dy[i]) * g[i] - sdn / n - xh[i] * sdnx / n) + (acc ? dx0[i] : 0.0);
          REQUIRE(std::fabs(dx[i] - e) <= 1e-5 * (1 + std::fabs(e)) * std::sqrt(double(n)));
          REQUIRE(std::fabs(dg[i] - (0.25 + dy[i] * xh[i])) <= 1e-5 * (1 + std::fabs(dy[i] * xh[i])));
          REQUIRE(same_bits(db[i], -0.5f + dy[i]));
        }
        if (acc) continue;
        if (want_dx.empty()) want_dx = dx, want_dg = dg;
        REQUIRE(std::memcmp(want_dx.data(), dx.data(), n * sizeof(float)) == 0);
        REQUIRE(std::memcmp(want_dg.data(), dg.data(), n * sizeof(float)) == 0);
      }
      // Softmax backward on probabilities p.
      std::vector<float> p = randn(n, rng);
      ref().softmax_f32(p.data(), n);
      const std::vector<float> d0 = randn(n, rng);
      std::vector<float> d = d0;
      K->softmax_backward_f32(d.data(), p.data(), n, 0.125f);
      double sum = 0;
      for (size_t i = 0; i < n; ++i) sum += double(p[i]) * d0[i];
      for (size_t i = 0; i < n; ++i) {
        const double e = 0.125 * p[i] * (d0[i] - sum);
        REQUIRE(std::fabs(d[i] - e) <= 1e-6 * (std::fabs(e) + 0.125 * p[i] * (std::fabs(d0[i]) + 1)) * std::sqrt(double(n)));
      }
      std::vector<float> dr = d0;
      ref().softmax_backward_f32(dr.data(), p.data(), n, 0.125f);
      REQUIRE(std::memcmp(dr.data(), d.data(), n * sizeof(float)) == 0);
    }
  }
}
