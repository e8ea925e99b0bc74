// ember's thread pool: parallel loops that never wait for a thread the OS is not running.
//
//   ThreadPool pool(2);
//   parallel_for(&pool, n, [&](size_t i) { ... });                       // i in [0, n)
//   parallel_for_tiles(&pool, n, 16, [&](size_t i0, size_t count) { ... });
//   parallel_for_2d(&pool, n0, n1, [&](size_t i, size_t j) { ... });     // j inner
//   parallel_for_tiles_2d(&pool, n0, n1, t0, t1, [&](size_t i0, size_t j0, size_t c0, size_t c1) { ... });
//
// A null pool, or one of one thread, runs the loop on the caller. Otherwise each thread (the caller is
// one) owns a contiguous share of the items, which it takes one at a time from the front (neighbouring
// items share data: one head's cached keys and values in attention), then takes the rest of the other
// shares from their backs. Each thread does as many items as it gets to run: when another process holds
// a core, the thread on it simply does fewer, and the caller returns as soon as every item is done,
// without waiting for a thread that took none. (pthreadpool, which
// XNNPACK needs, splits the range into one part per thread up front and makes the caller spin until
// every worker has checked in: a worker the OS does not run costs a time slice per parallel loop,
// 5 tokens of a small model 0.06 s on 2 threads and 27 s on 32; see docs/performance.md.)
// Waiting threads spin briefly with sched_yield() (giving the core to anything runnable), then sleep;
// the caller's wait for the last items yields too.
// More threads than available_cpus() are capped to it unless `oversubscribe`.
// A pool runs one loop at a time: one caller thread (a Session or a Trainer owns its pool). Items must
// write disjoint memory; which thread runs an item never changes its result.
#pragma once

#include <pthreadpool.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ember/session.h"  // available_cpus()

namespace ember {

class ThreadPool {
 public:
  explicit ThreadPool(size_t n_threads = 1, bool oversubscribe = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  size_t n_threads() const { return n_threads_; }
  // Runs fn(ctx, i) for every i in [0, n) and returns when all are done. n < 2^32.
  void run(size_t n, void (*fn)(const void* ctx, size_t i), const void* ctx);
  // A pthreadpool of the same size for XNNPACK's operators (created on first use; nullptr for one
  // thread). Its operators are created with XNN_FLAG_YIELD_WORKERS, so its threads sleep between runs
  // instead of spinning against this pool's.
  pthreadpool_t xnnpack_pool();

 private:
  void worker(size_t index);
  void work(uint32_t gen, size_t self);  // takes and runs items of loop `gen` until none is left

  // One thread's share of the current loop: items [front, back) not taken yet, and how many those are,
  // tagged with the loop's generation (left = generation << 32 | count). A take first decrements `left`
  // (only while the generation matches and the count is not 0), which reserves one item, then moves
  // front or back to name it: the owner and a thief never get the same item.
  struct alignas(64) Share {
    std::atomic<uint64_t> left{0};
    std::atomic<size_t> front{0}, back{0};
  };
  bool take(Share& s, uint32_t gen, bool from_front, size_t* item);

  size_t n_threads_ = 1;
  std::vector<std::thread> threads_;
  std::unique_ptr<Share[]> shares_;
  // The current loop. The job's fields are atomics so that a worker still busy with the previous loop may
  // read them while the next one is published (its takes then fail, and the values go unused).
  std::atomic<uint32_t> gen_{0};  // the generation workers wait for
  std::atomic<void (*)(const void*, size_t)> fn_{nullptr};
  std::atomic<const void*> ctx_{nullptr};
  std::atomic<size_t> done_{0};   // items of the current loop finished
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  pthreadpool_t xnn_ = nullptr;
};

// The loops, each over `pool` (nullptr: the caller runs them in order).
template <class F>
void parallel_for(ThreadPool* pool, size_t n, const F& f) {
  if (!pool || pool->n_threads() <= 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  pool->run(n, [](const void* c, size_t i) { (*static_cast<const F*>(c))(i); }, &f);
}

template <class F>
void parallel_for_tiles(ThreadPool* pool, size_t n, size_t tile, const F& f) {
  if (n == 0) return;
  if (tile == 0) tile = 1;
  const size_t tiles = (n + tile - 1) / tile;
  parallel_for(pool, tiles, [&](size_t t) {
    const size_t i0 = t * tile;
    f(i0, n - i0 < tile ? n - i0 : tile);
  });
}

template <class F>
void parallel_for_2d(ThreadPool* pool, size_t n0, size_t n1, const F& f) {
  if (n1 == 0) return;
  parallel_for(pool, n0 * n1, [&](size_t k) { f(k / n1, k % n1); });
}

template <class F>
void parallel_for_tiles_2d(ThreadPool* pool, size_t n0, size_t n1, size_t t0, size_t t1, const F& f) {
  if (n0 == 0 || n1 == 0) return;
  const size_t c1 = (n1 + t1 - 1) / t1;
  parallel_for(pool, (n0 + t0 - 1) / t0 * c1, [&](size_t k) {
    const size_t i0 = k / c1 * t0, j0 = k % c1 * t1;
    f(i0, j0, n0 - i0 < t0 ? n0 - i0 : t0, n1 - j0 < t1 ? n1 - j0 : t1);
  });
}

inline size_t threads_of(const ThreadPool* pool) { return pool ? pool->n_threads() : 1; }

}  // namespace ember
