#include "core/threadpool.h"

#include <sched.h>
#include <unistd.h>

#include <chrono>

#include "kernels/cpu_relax.h"

namespace ember {
namespace {

// How long an idle worker spins (checking, pausing, and yielding its core to anything runnable every
// few checks) before it sleeps: long enough to catch the next loop of a forward pass, which follows
// within microseconds; short enough that a session between tokens leaves the CPU to others.
constexpr auto kSpinBeforeSleep = std::chrono::microseconds(200);
constexpr int kChecksPerYield = 16;

// Spins until done() (pausing, sched_yield() every kChecksPerYield checks); false when `limit` passed
// first. limit == 0: no limit.
template <class Done>
bool spin_until(const Done& done, std::chrono::microseconds limit) {
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t k = 1;; ++k) {
    if (done()) return true;
    if (k % kChecksPerYield == 0) {
      sched_yield();
      if (limit.count() > 0 && std::chrono::steady_clock::now() - t0 > limit) return false;
    } else {
      cpu_relax();
    }
  }
}

}  // namespace

size_t available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<size_t>(n) : 1;
}

ThreadPool::ThreadPool(size_t n_threads, bool oversubscribe) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (!oversubscribe && n_threads_ > available_cpus()) n_threads_ = available_cpus();
  shares_.reset(new Share[n_threads_]);
  threads_.reserve(n_threads_ - 1);
  try {
    for (size_t i = 1; i < n_threads_; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
  } catch (const std::system_error&) {  // the OS refused a thread: run with those there are
    n_threads_ = threads_.size() + 1;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    gen_.fetch_add(1);
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  if (xnn_) pthreadpool_destroy(xnn_);
}

pthreadpool_t ThreadPool::xnnpack_pool() {
  if (!xnn_ && n_threads_ > 1) xnn_ = pthreadpool_create(n_threads_);
  return xnn_;
}

void ThreadPool::run(size_t n, void (*fn)(const void*, size_t), const void* ctx) {
  if (n == 0) return;
  if (threads_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  // Publish: the job and the shares, then the generation (release: a worker that sees it sees them),
  // then wake the sleepers. gen_ and sleepers_ are sequentially consistent, so a worker going to sleep
  // either sees the new generation or is seen (and woken).
  const uint32_t gen = gen_.load(std::memory_order_relaxed) + 1;
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const size_t T = n_threads_;
  for (size_t t = 0; t < T; ++t) {
    const size_t a = n * t / T, b = n * (t + 1) / T;
    shares_[t].front.store(a, std::memory_order_relaxed);
    shares_[t].back.store(b, std::memory_order_relaxed);
    shares_[t].left.store(static_cast<uint64_t>(gen) << 32 | (b - a), std::memory_order_release);
  }
  gen_.store(gen);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  work(gen, 0);
  // Every item is taken; wait for the ones other threads are still running (yielding: one of them may
  // be waiting for this core).
  spin_until([&] { return done_.load(std::memory_order_acquire) == n; }, std::chrono::microseconds(0));
}

bool ThreadPool::take(Share& s, uint32_t gen, bool from_front, size_t* item) {
  uint64_t c = s.left.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<uint32_t>(c >> 32) != gen || static_cast<uint32_t>(c) == 0) return false;
    if (s.left.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  // One item of loop `gen` is reserved, so that loop cannot end (nor the next be published) before this
  // thread has run it: front and back still belong to `gen`.
  *item = from_front ? s.front.fetch_add(1, std::memory_order_relaxed) : s.back.fetch_sub(1, std::memory_order_relaxed) - 1;
  return true;
}

void ThreadPool::work(uint32_t gen, size_t self) {
  // The job as published with `gen`, or a later one; a later one is never used: every take below
  // fails once `gen` is over, and the next loop is published only after every item of `gen` is done.
  const auto fn = fn_.load(std::memory_order_relaxed);
  const void* ctx = ctx_.load(std::memory_order_relaxed);
  const size_t T = n_threads_;
  size_t item;
  for (size_t k = 0; k < T; ++k) {  // own share from the front, then the others' from their backs
    Share& s = shares_[(self + k) % T];
    while (take(s, gen, k == 0, &item)) {
      fn(ctx, item);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
}

void ThreadPool::worker(size_t index) {
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return gen_.load(std::memory_order_acquire) != seen; }, kSpinBeforeSleep)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_.wait(lock, [&] { return gen_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = gen_.load(std::memory_order_acquire);
    work(seen, index);
  }
}

}  // namespace ember
