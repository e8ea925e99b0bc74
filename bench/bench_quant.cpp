// The quantizer's int4 paths on GPT-2 small's layer shapes: rounding to nearest (quantize_rows_q4) and
// GPTQ (gptq_quantize_q4: its Hessian factorization and column loop), at 1 and 2 threads, median seconds
// of --reps runs. The Hessian is X^T X of correlated random inputs (512 rows), as a layer's inputs are. A
// benchmark (`meson test --benchmark --suite bench`), never a pass/fail test.
//   bench_quant [--reps 3] [--group 32]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ember/quantize.h"

namespace {

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median_of(int reps, const std::function<void()>& f) {
  std::vector<double> s;
  for (int r = 0; r < reps; ++r) s.push_back(seconds_of(f));
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  size_t group = 32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--group" && i + 1 < argc) group = std::strtoul(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--reps N] [--group N]\n", argv[0]);
      return 2;
    }
  }
  struct Shape {
    const char* name;
    size_t out, in;
  };
  const Shape shapes[] = {{"attn_proj", 768, 768}, {"attn_qkv", 2304, 768}, {"mlp_fc", 3072, 768}, {"mlp_proj", 768, 3072}};
  std::printf("| layer (out x in), group %zu | rtn s | gptq s, 1 thread | gptq s, 2 threads |\n|---|---:|---:|---:|\n", group);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Shape& sh : shapes) {
    const size_t out = sh.out, in = sh.in, rows = 512;
    if (in % group != 0) continue;
    std::vector<float> w(out * in);
    for (float& v : w) v = 0.02f * nd(rng);
    // Correlated inputs: each a random mix of 64 shared factors plus its own noise.
    std::vector<float> f(rows * 64), x(rows * in);
    for (float& v : f) v = nd(rng);
    std::vector<float> mix(64 * in);
    for (float& v : mix) v = 0.3f * nd(rng);
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < in; ++i) {
        float s = nd(rng);
        for (size_t k = 0; k < 64; ++k) s += f[r * 64 + k] * mix[k * in + i];
        x[r * in + i] = s;
      }
    std::vector<double> H(in * in, 0.0);
    for (size_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < in; ++i)
        for (size_t j = 0; j < in; ++j) H[i * in + j] += static_cast<double>(x[r * in + i]) * x[r * in + j];
    std::vector<int8_t> q(out * in);
    std::vector<uint16_t> sc(out * (in / group));
    const double rtn = median_of(reps, [&] { ember::quantize_rows_q4(w.data(), out, in, group, q.data(), sc.data()); });
    double g[2];
    for (uint32_t t : {1u, 2u})
      g[t - 1] = median_of(reps, [&] {
        if (!ember::gptq_quantize_q4(w.data(), out, in, group, H.data(), q.data(), sc.data(), t).ok()) std::abort();
      });
    std::printf("| %s %zu x %zu | %.3f | %.2f | %.2f |\n", sh.name, out, in, rtn, g[0], g[1]);
    std::fflush(stdout);
  }
  return 0;
}
