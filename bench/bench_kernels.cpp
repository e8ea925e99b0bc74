// Microbenchmarks of ember's kernels (a separate executable, never a pass/fail test):
//   * int8 linear (quantize_rows_q8 + gemm_q8_parallel) vs XNNPACK f32 (LinearF32) on GPT-2-small shapes,
//     decode (batch 1) and prefill (batch 512), 1 and 2 threads;
//   * "cold" decode: weights rotated over copies larger than the caches, i.e. streamed from DRAM, next to a
//     plain memory-read bandwidth baseline;
//   * int4 linear (groups of 32: quantize_rows_q8 + gemm_q4_parallel) on the same shapes, hot and cold, with
//     its speed-up over the int8 linear of the same shape and threads;
//   * the f32 table entries, reference vs the selected table.
// Every number is the median over --reps samples; a sample times enough calls to last >= --sample-ms.
//
//   build-k/tests/bench_kernels [--reps 15] [--sample-ms 20] [--cold-mib 512] [--quick]
//   meson test -C build-k --benchmark --suite bench -v
#include <cpuinfo.h>
#include <pthreadpool.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "format/q4.h"
#include "kernels/gemm_q4.h"
#include "kernels/gemm_q8.h"
#include "kernels/kernels.h"
#include "kernels/xnn/linear_xnn.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int reps = 15;
  double sample_ms = 20;
  size_t cold_mib = 512;
  bool quick = false;
};

// Median seconds per call of fn(i) (i counts calls, for rotating over cold copies).
double median_seconds(const Options& opt, const std::function<void(size_t)>& fn) {
  size_t calls = 0;
  for (int i = 0; i < 3; ++i) fn(calls++);  // warm up (page faults, pool wake-up)
  // Calibrate the calls per sample.
  size_t per = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < per; ++i) fn(calls++);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (ms >= opt.sample_ms || per >= (1u << 24)) break;
    per = ms <= 0 ? per * 16 : std::max(per + 1, static_cast<size_t>(per * opt.sample_ms / ms * 1.1));
  }
  std::vector<double> s;
  for (int r = 0; r < opt.reps; ++r) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < per; ++i) fn(calls++);
    s.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / per);
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

// Cheap deterministic fill (a 150 MB LM head through std::normal_distribution would take seconds).
uint64_t g_state = 0x9E3779B97F4A7C15ull;
inline uint32_t next_u32() {
  g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<uint32_t>(g_state >> 33);
}
void fill_f32(std::vector<float>& v, float scale) {
  for (float& x : v) x = (static_cast<float>(next_u32() & 0xffff) / 32768.0f - 1.0f) * scale;
}
void fill_q8(int8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<int8_t>(static_cast<int>(next_u32() % 255) - 127);
}

// 64-byte aligned int8 buffer (as the model mmap provides).
struct AlignedQ8 {
  std::unique_ptr<int8_t, decltype(&std::free)> p{nullptr, &std::free};
  explicit AlignedQ8(size_t n) : p(static_cast<int8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64)), &std::free) {}
  int8_t* get() const { return p.get(); }
};

// Read bandwidth: each task sums a 1 MiB chunk.
struct ReadTask {
  const uint64_t* p;
  size_t words_per_chunk;
  uint64_t sink[64];
};
void read_chunk(void* ctx, size_t c) {
  ReadTask& t = *static_cast<ReadTask*>(ctx);
  const uint64_t* q = t.p + c * t.words_per_chunk;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < t.words_per_chunk; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  t.sink[c % 64] += s0 + s1 + s2 + s3;
}

#if defined(__x86_64__)
// The same read with 32-byte AVX2 loads (the width the int8 kernels use): on some x86 cores single-thread
// DRAM read bandwidth depends on the load width. Only called when cpuinfo reports AVX2.
__attribute__((target("avx2"))) void read_chunk_avx2(void* ctx, size_t c) {
  ReadTask& t = *static_cast<ReadTask*>(ctx);
  const __m256i* q = reinterpret_cast<const __m256i*>(t.p + c * t.words_per_chunk);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < t.words_per_chunk / 4; i += 4) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(q + i));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(q + i + 1));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(q + i + 2));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(q + i + 3));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  t.sink[c % 64] += static_cast<uint64_t>(_mm256_extract_epi64(s, 0));
}
#endif

struct Shape {
  const char* name;
  size_t out, in, batch;
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) opt.reps = std::atoi(argv[++i]);
    else if (a == "--sample-ms" && i + 1 < argc) opt.sample_ms = std::atof(argv[++i]);
    else if (a == "--cold-mib" && i + 1 < argc) opt.cold_mib = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--quick") opt.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--reps N] [--sample-ms MS] [--cold-mib MIB] [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (opt.quick) {
    opt.reps = 5;
    opt.sample_ms = 5;
    opt.cold_mib = 128;
  }
  if (opt.reps < 1) opt.reps = 1;
  const ember::Kernels& K = ember::kernels();
  const ember::Kernels& R = ember::reference_kernels();
  std::printf("kernels: %s   reps: %d (median)   sample: >= %.0f ms   cold set: >= %zu MiB\n\n", K.name, opt.reps,
              opt.sample_ms, opt.cold_mib);
  ember::ThreadPool pool2(2);
  const std::pair<int, ember::ThreadPool*> pools[] = {{1, nullptr}, {2, &pool2}};

  // Memory-read baseline.
  {
    const size_t bytes = opt.cold_mib << 20, chunk = 1 << 20;
    uint64_t* buf = static_cast<uint64_t*>(std::aligned_alloc(64, bytes));
    for (size_t i = 0; i < bytes / 8; ++i) buf[i] = i;
    ReadTask task{buf, chunk / 8, {}};
    std::vector<std::pair<const char*, void (*)(void*, size_t)>> readers = {{"sum of uint64", read_chunk}};
#if defined(__x86_64__)
    if (cpuinfo_initialize() && cpuinfo_has_x86_avx2()) readers.push_back({"sum of 32-byte AVX2 loads", read_chunk_avx2});
#endif
    std::printf("| memory read (%zu MiB) | threads | GB/s |\n|---|---|---|\n", opt.cold_mib);
    // Plain variables, not structured bindings: lambdas cannot capture those before C++20 (clang).
    for (const auto& reader : readers)
      for (const auto& pool : pools) {
        const char* name = reader.first;
        void (*fn)(void*, size_t) = reader.second;
        const int nt = pool.first;
        ember::ThreadPool* tp = pool.second;
        const double s = median_seconds(opt, [&](size_t) {
          ember::parallel_for(tp, bytes / chunk, [&](size_t i) { fn(&task, i); });
        });
        std::printf("| %s | %d | %.1f |\n", name, nt, bytes / s * 1e-9);
      }
    std::free(buf);
    std::printf("\n");
  }

  const Shape shapes[] = {
      {"attn_qkv", 2304, 768, 1}, {"attn_proj", 768, 768, 1},   {"mlp_fc", 3072, 768, 1},
      {"mlp_proj", 768, 3072, 1}, {"lm_head", 50257, 768, 1},   {"mlp_fc prefill", 3072, 768, 512},
  };
  std::printf(
      "| shape (out x in) | batch | thr | int8 hot us | int8 GB/s | int8 GMAC/s | int8 cold us | int8 cold GB/s "
      "| f32 xnn hot us | f32 GB/s | f32 GMAC/s | f32 cold us | f32 cold GB/s | quantize us |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::map<std::pair<std::string, int>, double> int8_hot;  // (shape, threads) -> seconds, for the int4 table
  for (const Shape& sh : shapes) {
    const size_t in = sh.in, out = sh.out, batch = sh.batch;
    const double macs = static_cast<double>(batch) * in * out;
    const double q8_bytes = static_cast<double>(out) * in + out * 4.0, f32_bytes = static_cast<double>(out) * in * 4.0;
    // int8 operands: one hot weight set, plus copies for the cold rotation (decode only).
    const size_t cold_copies =
        batch == 1 ? std::max<size_t>(2, ((opt.cold_mib << 20) + out * in - 1) / (out * in)) : 0;
    std::vector<AlignedQ8> wq;
    for (size_t c = 0; c < 1 + cold_copies; ++c) {
      wq.emplace_back(out * in);
      fill_q8(wq.back().get(), out * in);
    }
    std::vector<float> ws(out), bias(out), x(batch * in), y(batch * out), xs(batch);
    fill_f32(ws, 0.01f);
    fill_f32(bias, 1.0f);
    fill_f32(x, 2.0f);
    std::vector<int8_t> xq(batch * in);
    auto args = [&](const int8_t* w) {
      return ember::GemmQ8Args{xq.data(), xs.data(), w, ws.data(), bias.data(), y.data(), batch, in, out};
    };
    // f32 operators (each holds its own packed copy of W).
    std::vector<float> wf(out * in);
    fill_f32(wf, 0.05f);
    std::vector<ember::LinearF32> lin;
    const size_t f32_cold = batch == 1 ? std::max<size_t>(2, ((opt.cold_mib << 20) + out * in * 4 - 1) / (out * in * 4)) : 0;
    for (size_t c = 0; c < 1 + f32_cold; ++c) {
      auto l = ember::LinearF32::create(wf.data(), bias.data(), in, out, sh.name);
      if (!l.ok()) {
        std::fprintf(stderr, "bench: %s\n", l.status().message().c_str());
        return 1;
      }
      lin.push_back(std::move(l.value()));
    }
    wf = std::vector<float>();
    for (const auto& pool : pools) {
      const int nt = pool.first;
      ember::ThreadPool* tp = pool.second;
      pthreadpool_t xnn = tp ? tp->xnnpack_pool() : nullptr;
      const double tq = median_seconds(opt, [&](size_t) { K.quantize_rows_q8(x.data(), batch, in, xq.data(), xs.data()); });
      const double hot = median_seconds(opt, [&](size_t) { ember::gemm_q8_parallel(tp, K, args(wq[0].get())); });
      int8_hot[{sh.name, nt}] = hot;
      double cold = NAN;
      if (cold_copies)
        cold = median_seconds(opt, [&](size_t i) { ember::gemm_q8_parallel(tp, K, args(wq[1 + i % cold_copies].get())); });
      const double fhot = median_seconds(opt, [&](size_t) {
        if (!lin[0].run(batch, x.data(), y.data(), xnn).ok()) std::abort();
      });
      double fcold = NAN;
      if (f32_cold)
        fcold = median_seconds(opt, [&](size_t i) {
          if (!lin[1 + i % f32_cold].run(batch, x.data(), y.data(), xnn).ok()) std::abort();
        });
      std::printf("| %s %zux%zu | %zu | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
                  sh.name, out, in, batch, nt, hot * 1e6, q8_bytes / hot * 1e-9, macs / hot * 1e-9, cold * 1e6,
                  q8_bytes / cold * 1e-9, fhot * 1e6, f32_bytes / fhot * 1e-9, macs / fhot * 1e-9, fcold * 1e6,
                  f32_bytes / fcold * 1e-9, tq * 1e6);
      std::fflush(stdout);
    }
  }

  // int4 linear: the same shapes, weights packed as the file holds them (format/q4.h), groups of 32.
  std::printf(
      "\n| int4 shape (out x in), group 32 | batch | thr | hot us | GB/s | GMAC/s | cold us | cold GB/s | int8 hot / "
      "int4 hot |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const Shape& sh : shapes) {
    const size_t in = sh.in, out = sh.out, batch = sh.batch, group = 32;
    const size_t bytes = ember::q4_bytes(out, in, group);
    const double macs = static_cast<double>(batch) * in * out;
    const size_t cold_copies = batch == 1 ? std::max<size_t>(2, ((opt.cold_mib << 20) + bytes - 1) / bytes) : 0;
    std::vector<AlignedQ8> w;
    {
      std::vector<int8_t> q(out * in);
      for (int8_t& v : q) v = static_cast<int8_t>(static_cast<int>(next_u32() % 16) - 8);
      std::vector<uint16_t> scales(out * (in / group));
      for (uint16_t& v : scales) v = static_cast<uint16_t>(0x1c00 + next_u32() % 0x400);  // halves in [2^-8, 2^-7)
      w.emplace_back(bytes);
      ember::q4_pack(q.data(), scales.data(), out, in, group, reinterpret_cast<uint8_t*>(w[0].get()));
      for (size_t c = 0; c < cold_copies; ++c) {
        w.emplace_back(bytes);
        std::memcpy(w.back().get(), w[0].get(), bytes);
      }
    }
    std::vector<float> bias(out), x(batch * in), y(batch * out), xs(batch);
    fill_f32(bias, 1.0f);
    fill_f32(x, 2.0f);
    std::vector<int8_t> xq(batch * in);
    std::vector<int32_t> xg(batch * (in / group));
    K.quantize_rows_q8(x.data(), batch, in, xq.data(), xs.data());
    auto args = [&](const int8_t* p) {
      const uint8_t* u = reinterpret_cast<const uint8_t*>(p);
      const auto* ws = reinterpret_cast<const uint16_t*>(u + ember::q4_nibble_bytes(out, in));
      return ember::GemmQ4Args{xq.data(), xs.data(), nullptr, u, ws, bias.data(), y.data(), batch, in, out, group};
    };
    for (const auto& pool : pools) {
      const int nt = pool.first;
      ember::ThreadPool* tp = pool.second;
      // Like the int8 columns: the GEMM alone (with the activations' group sums it needs), on activations
      // quantized once.
      const double hot = median_seconds(opt, [&](size_t) { ember::gemm_q4_parallel(tp, K, args(w[0].get()), xg.data()); });
      double cold = NAN;
      if (cold_copies)
        cold = median_seconds(opt, [&](size_t i) { ember::gemm_q4_parallel(tp, K, args(w[1 + i % cold_copies].get()), xg.data()); });
      std::printf("| %s %zux%zu | %zu | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx |\n", sh.name, out, in, batch, nt,
                  hot * 1e6, bytes / hot * 1e-9, macs / hot * 1e-9, cold * 1e6, bytes / cold * 1e-9,
                  int8_hot[{sh.name, nt}] / hot);
      std::fflush(stdout);
    }
  }

  // f32 table entries: reference vs selected, one thread, hot.
  std::printf("\n| f32 kernel | n | ref ns | %s ns | speed-up |\n|---|---|---|---|---|\n", K.name);
  struct F32Case {
    const char* name;
    size_t n;
    std::function<void(const ember::Kernels&, std::vector<float>&, std::vector<float>&, std::vector<float>&)> run;
  };
  volatile float sink = 0;
  const F32Case cases[] = {
      {"layernorm", 768, [](const ember::Kernels& k, auto& a, auto& b, auto& c) { k.layernorm_f32(a.data(), b.data(), c.data(), b.data(), a.size(), 1e-5f); }},
      {"gelu_tanh", 3072, [](const ember::Kernels& k, auto& a, auto&, auto&) { k.gelu_tanh_f32(a.data(), a.size()); }},
      {"gelu_erf", 3072, [](const ember::Kernels& k, auto& a, auto&, auto&) { k.gelu_erf_f32(a.data(), a.size()); }},
      {"relu", 3072, [](const ember::Kernels& k, auto& a, auto&, auto&) { k.relu_f32(a.data(), a.size()); }},
      {"softmax", 1024, [](const ember::Kernels& k, auto& a, auto&, auto&) { k.softmax_f32(a.data(), a.size()); }},
      {"dot", 64, [&sink](const ember::Kernels& k, auto& a, auto& b, auto&) { sink = sink + k.dot_f32(a.data(), b.data(), a.size()); }},
      {"axpy", 64, [](const ember::Kernels& k, auto& a, auto& b, auto&) { k.axpy_f32(1e-3f, a.data(), b.data(), a.size()); }},
      {"add", 768, [](const ember::Kernels& k, auto& a, auto& b, auto&) { k.add_f32(a.data(), b.data(), a.size()); }},
      // One query and head of GPT-2 small's f32-cache attention over 256 cached rows (n: floats of k / v).
      {"scores_f32 (256 rows, d 64)", 256 * 64, [](const ember::Kernels& k, auto& a, auto& b, auto& c) {
         k.scores_f32(a.data(), b.data(), 256, 64, 0.125f, c.data());
       }},
      {"wsum_rows_f32 (256 rows, d 64)", 256 * 64, [](const ember::Kernels& k, auto& a, auto& b, auto& c) {
         std::fill(c.begin(), c.begin() + 64, 0.0f);  // it accumulates
         k.wsum_rows_f32(a.data(), b.data(), 256, 64, c.data());
       }},
      {"quantize_rows_q8", 768, [](const ember::Kernels& k, auto& a, auto& b, auto&) {
         static std::vector<int8_t> q(768);
         k.quantize_rows_q8(a.data(), 1, a.size(), q.data(), b.data());
       }},
  };
  for (const F32Case& c : cases) {
    double t[2];
    const ember::Kernels* ks[2] = {&R, &K};
    for (int j = 0; j < 2; ++j) {
      std::vector<float> a(c.n), b(c.n), d(c.n);
      fill_f32(a, 2.0f);
      fill_f32(b, 1.0f);
      fill_f32(d, 1.0f);
      const std::vector<float> a0 = a;
      t[j] = median_seconds(opt, [&](size_t i) {
        if (i % 64 == 0) a = a0;  // keep in-place kernels (gelu, softmax) on representative values
        c.run(*ks[j], a, b, d);
      });
    }
    std::printf("| %s | %zu | %.0f | %.0f | %.1fx |\n", c.name, c.n, t[0] * 1e9, t[1] * 1e9, t[0] / t[1]);
  }
  return 0;
}
