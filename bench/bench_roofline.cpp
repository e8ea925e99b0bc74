// Where decode's roofline lies on this machine (a separate executable, never a pass/fail test): one
// thread, in one process, in alternating rounds (medians; the ratio columns are medians of the per-round
// ratios, so a machine shared with other jobs slows the variants alike):
//   * read bandwidth of buffers of three sizes: 4x the last-level cache (DRAM), the model's int8 linear
//     weights (what decode streams), and 64 MiB; with plain loads (ember::measure_read_bandwidth) and
//     with the int8 GEMV's stream prefetch (L2 16 KiB and L1 8 KiB ahead, kernels/avx2/gemm_q8_avx2_impl.h);
//   * the decode's matrix-vector products alone: the kernel table's gemm_q8_tile over every int8 linear
//     layer of the model and its LM head, batch 1, token after token, in GB/s of weights and scales.
//
//   build/tests/bench_roofline MODEL.ember [--rounds 10]
//   meson test -C build --benchmark --suite bench roofline -v     (the default model: small, cached)
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ember/model.h"
#include "ember/roofline.h"
#include "kernels/kernels.h"
#include "model/model_impl.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#if defined(__x86_64__)
// Eight 32-byte loads per 256 bytes, and the GEMV's prefetches of that span: 4 lines 16 KiB ahead into
// L2, 4 lines 8 KiB ahead into L1.
__attribute__((target("avx2"))) uint64_t read_prefetched(const uint8_t* p, size_t n) {
  __m256i a[8];
  for (auto& v : a) v = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 256) {
    for (int r = 0; r < 4; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 16384 + 64 * r), _MM_HINT_T2);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + 8192 + 64 * r), _MM_HINT_T0);
    }
    for (int j = 0; j < 8; ++j)
      a[j] = _mm256_xor_si256(a[j], _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i) + j));
  }
  for (int j = 1; j < 8; ++j) a[0] = _mm256_xor_si256(a[0], a[j]);
  return static_cast<uint64_t>(_mm256_extract_epi64(a[0], 0) ^ _mm256_extract_epi64(a[0], 3));
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_roofline MODEL.ember [--rounds N]\n");
    return 2;
  }
  int rounds = 10;
  for (int i = 2; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--rounds") rounds = std::max(1, std::atoi(argv[i + 1]));
  auto loaded = ember::Model::load(argv[1]);
  if (!loaded.ok()) {
    std::fprintf(stderr, "bench_roofline: %s\n", loaded.status().message().c_str());
    return 1;
  }
  const ember::ModelImpl& M = ember::model_impl(**loaded);
  const ember::Kernels& K = ember::kernels();
  std::vector<const ember::Linear*> lins;
  for (const auto& layer : M.layers)
    for (const auto& l : layer.linear)
      if (l.w_q8) lins.push_back(&l);
  if (M.lm_head.w_q8) lins.push_back(&M.lm_head);
  size_t weight_bytes = 0, widest = 0, outs = 0;
  for (const auto* l : lins) {
    weight_bytes += l->in * l->out + 4 * l->out;
    widest = std::max(widest, l->in);
    outs = std::max(outs, l->out);
  }
  const size_t llc = ember::last_level_cache_bytes();
  std::printf("model %s: %zu int8 linear layers, %.1f MB of weights and scales; kernels %s; last-level cache %.0f MiB\n",
              argv[1], lins.size(), weight_bytes / 1e6, K.name, llc / 1048576.0);

  struct Buf {
    const char* name;
    size_t bytes;
    std::vector<double> plain, pf;
  };
  std::vector<Buf> bufs = {{"4x last-level cache", std::max<size_t>(4 * llc, size_t{256} << 20), {}, {}},
                           {"the int8 weights' size", std::max<size_t>(weight_bytes, 1 << 20), {}, {}},
                           {"64 MiB", size_t{64} << 20, {}, {}}};
  std::vector<int8_t> xq(widest);
  std::mt19937 rng(1);
  for (int8_t& v : xq) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  const float xs = 0.01f;
  std::vector<float> y(outs);
  std::vector<double> gemv;
  for (int r = 0; r < rounds; ++r) {
    for (Buf& b : bufs) {
      auto bw = ember::measure_read_bandwidth(1, b.bytes, 0.2);
      if (!bw.ok()) {
        std::fprintf(stderr, "bench_roofline: %s\n", bw.status().message().c_str());
        return 1;
      }
      b.plain.push_back(bw->bytes_per_second / 1e9);
#if defined(__x86_64__)
      if (__builtin_cpu_supports("avx2")) {
        // The same buffer size, this loop: one untimed pass, then passes for >= 0.2 s, the median.
        std::vector<uint8_t, std::allocator<uint8_t>> mem(b.bytes + 64 + 16384 + 4096);
        uint8_t* p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) / 64 * 64);
        const size_t n = b.bytes / 256 * 256;
        std::memset(p, 1, n);
        volatile uint64_t sink = read_prefetched(p, n);
        std::vector<double> t;
        double spent = 0;
        while (t.size() < 3 || spent < 0.2) {
          const Clock::time_point a = Clock::now();
          sink = sink ^ read_prefetched(p, n);
          t.push_back(std::chrono::duration<double>(Clock::now() - a).count());
          spent += t.back();
        }
        b.pf.push_back(n / median(t) / 1e9);
      }
#endif
    }
    const int tokens = 4;
    const Clock::time_point a = Clock::now();
    for (int t = 0; t < tokens; ++t)
      for (const auto* l : lins)
        K.gemm_q8_tile(ember::GemmQ8Args{xq.data(), &xs, l->w_q8, l->w_scales, l->bias, y.data(), 1, l->in, l->out}, 0, 1, 0,
                       l->out);
    gemv.push_back(static_cast<double>(weight_bytes) * tokens / std::chrono::duration<double>(Clock::now() - a).count() / 1e9);
  }
  std::printf("\n| 1 thread, %d rounds | plain loads GB/s | with the GEMV's prefetch GB/s |\n|---|---:|---:|\n", rounds);
  for (const Buf& b : bufs) {
    std::printf("| read %s (%.0f MiB) | %.2f |", b.name, b.bytes / 1048576.0, median(b.plain));
    if (b.pf.empty())
      std::printf(" - |\n");
    else
      std::printf(" %.2f |\n", median(b.pf));
  }
  std::printf("\ndecode's int8 GEMVs alone (gemm_q8_tile, batch 1, over the %.1f MB): %.2f GB/s\n", weight_bytes / 1e6,
              median(gemv));
  return 0;
}
