// measure_read_bandwidth and last_level_cache_bytes (include/ember/roofline.h).
#include <cpuinfo.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "ember/roofline.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace ember {

namespace {

constexpr size_t kSliceAlign = 256;  // bytes per step of the read loops; slices are multiples of it

// XOR of every 32-byte vector of [p, p + n) folded to 64 bits, so the loads cannot be dropped; n is a
// multiple of kSliceAlign, p 64-byte aligned. Eight independent loads per step, nothing else. (AArch64
// always has NEON: there it is unused.)
[[maybe_unused]] uint64_t read_generic(const uint8_t* p, size_t n) {
  uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < n; i += 64) {
    const uint64_t* q = reinterpret_cast<const uint64_t*>(p + i);
    for (int j = 0; j < 8; ++j) a[j] ^= q[j];
  }
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (size_t i = 0; i < n; i += 256) {
    const __m256i* q = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(q + 0));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(q + 1));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(q + 2));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(q + 3));
    a4 = _mm256_xor_si256(a4, _mm256_load_si256(q + 4));
    a5 = _mm256_xor_si256(a5, _mm256_load_si256(q + 5));
    a6 = _mm256_xor_si256(a6, _mm256_load_si256(q + 6));
    a7 = _mm256_xor_si256(a7, _mm256_load_si256(q + 7));
  }
  const __m256i s = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3)),
                                     _mm256_xor_si256(_mm256_xor_si256(a4, a5), _mm256_xor_si256(a6, a7)));
  const __m128i h = _mm_xor_si128(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(h)) ^ static_cast<uint64_t>(_mm_extract_epi64(h, 1));
}
#elif defined(__aarch64__)
uint64_t read_neon(const uint8_t* p, size_t n) {
  uint8x16_t a[8];
  for (int j = 0; j < 8; ++j) a[j] = vdupq_n_u8(0);
  for (size_t i = 0; i < n; i += 128)
    for (int j = 0; j < 8; ++j) a[j] = veorq_u8(a[j], vld1q_u8(p + i + 16 * j));
  for (int j = 1; j < 8; ++j) a[0] = veorq_u8(a[0], a[j]);
  const uint64x2_t s = vreinterpretq_u64_u8(a[0]);
  return vgetq_lane_u64(s, 0) ^ vgetq_lane_u64(s, 1);
}
#endif

using ReadFn = uint64_t (*)(const uint8_t*, size_t);

ReadFn read_fn() {
#if defined(__x86_64__)
  if (cpuinfo_initialize() && cpuinfo_has_x86_avx2()) return read_avx2;
  return read_generic;
#elif defined(__aarch64__)
  return read_neon;
#else
  return read_generic;
#endif
}

size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return SIZE_MAX;
  return static_cast<size_t>(pages) * static_cast<size_t>(page);
}

// Waiting for the other threads of a pass: spin, yielding the core (the machine may have fewer cores
// than threads at times; the measurement then says so by being slow).
template <class Pred>
void wait_until(const Pred& done) {
  while (!done()) sched_yield();
}

}  // namespace

Result<ReadBandwidth> measure_read_bandwidth(size_t n_threads, size_t buffer_bytes, double min_seconds) {
  if (n_threads == 0 || n_threads > 1024)
    return invalid_argument("read bandwidth: n_threads must be in [1, 1024] (got " + std::to_string(n_threads) + ")");
  constexpr size_t kMinPerThread = 64 * 1024;
  if (buffer_bytes / n_threads < kMinPerThread)
    return invalid_argument("read bandwidth: a buffer of " + std::to_string(buffer_bytes) + " bytes for " +
                            std::to_string(n_threads) + " threads is below the minimum of 64 KiB per thread (" +
                            std::to_string(kMinPerThread * n_threads) + " bytes)");
  const size_t phys = physical_memory_bytes();
  if (buffer_bytes > phys)
    return invalid_argument("read bandwidth: a buffer of " + std::to_string(buffer_bytes) +
                            " bytes exceeds the machine's physical memory (" + std::to_string(phys) + " bytes)");
  if (!(min_seconds > 0 && min_seconds <= 60))
    return invalid_argument("read bandwidth: min_seconds must be in (0, 60] (got " + std::to_string(min_seconds) + ")");

  // Disjoint slices of whole read steps; the bytes measured are what the slices cover.
  const size_t slice = buffer_bytes / n_threads / kSliceAlign * kSliceAlign;
  const size_t total = slice * n_threads;
  void* mem = nullptr;
  if (posix_memalign(&mem, 64, total) != 0 || mem == nullptr)
    return internal_error("read bandwidth: cannot allocate the " + std::to_string(total) + "-byte buffer");
  uint8_t* buf = static_cast<uint8_t*>(mem);
  const ReadFn read = read_fn();

  // Pass p (from 1) starts when `go` becomes p; each worker adds 1 to `done` when its slice is read.
  // Pass 1 writes the slices (committing their pages on the threads that read them) and is not timed.
  std::atomic<size_t> go{0}, done{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sink{0};
  auto do_pass = [&](size_t t, size_t pass) {
    uint8_t* s = buf + t * slice;
    if (pass == 1)
      std::memset(s, static_cast<int>(t + 1), slice);
    else
      sink.fetch_xor(read(s, slice), std::memory_order_relaxed);
  };
  auto worker = [&](size_t t) {
    for (size_t pass = 1;; ++pass) {
      wait_until([&] { return go.load(std::memory_order_acquire) >= pass || stop.load(std::memory_order_acquire); });
      if (stop.load(std::memory_order_acquire)) return;
      do_pass(t, pass);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  std::vector<std::thread> threads;
  try {
    for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker, t);
  } catch (const std::system_error& e) {
    stop.store(true, std::memory_order_release);
    for (std::thread& th : threads) th.join();
    std::free(mem);
    return internal_error("read bandwidth: cannot start thread " + std::to_string(threads.size() + 1) + " of " +
                          std::to_string(n_threads) + ": " + e.what());
  }
  using Clock = std::chrono::steady_clock;
  std::vector<double> times;
  double spent = 0;
  for (size_t pass = 1; pass == 1 || times.size() < 3 || spent < min_seconds; ++pass) {
    const Clock::time_point a = Clock::now();
    go.store(pass, std::memory_order_release);
    do_pass(0, pass);
    wait_until([&] { return done.load(std::memory_order_acquire) == (n_threads - 1) * pass; });
    const double s = std::chrono::duration<double>(Clock::now() - a).count();
    if (pass > 1) {
      times.push_back(s);
      spent += s;
    }
  }
  stop.store(true, std::memory_order_release);
  for (std::thread& th : threads) th.join();
  std::free(mem);
  if (sink.load() == 0x5eed) std::atomic_thread_fence(std::memory_order_seq_cst);  // keeps `sink` alive

  ReadBandwidth r;
  r.n_threads = n_threads;
  r.buffer_bytes = total;
  r.passes = times.size();
  r.seconds = spent;
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  const double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  r.bytes_per_second = static_cast<double>(total) / median;
  r.best_bytes_per_second = static_cast<double>(total) / times.front();
  return r;
}

size_t last_level_cache_bytes() {
  if (!cpuinfo_initialize()) return 0;
  if (cpuinfo_get_l4_caches_count() > 0 && cpuinfo_get_l4_cache(0)) return cpuinfo_get_l4_cache(0)->size;
  if (cpuinfo_get_l3_caches_count() > 0 && cpuinfo_get_l3_cache(0)) return cpuinfo_get_l3_cache(0)->size;
  if (cpuinfo_get_l2_caches_count() > 0 && cpuinfo_get_l2_cache(0)) return cpuinfo_get_l2_cache(0)->size;
  return 0;
}

}  // namespace ember
