#include "core/threadpool.h"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>

namespace ember {

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

uint32_t parallel_flags() {
  // EXPERIMENT: EMBER_POOL_FLAGS
  static const uint32_t f = std::getenv("EMBER_POOL_FLAGS") ? static_cast<uint32_t>(std::atoi(std::getenv("EMBER_POOL_FLAGS"))) : 0;
  return f;
}

ThreadPool::ThreadPool(size_t n_threads, bool oversubscribe) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (!oversubscribe) {
    const size_t cpus = available_cpus();
    if (n_threads_ > cpus) n_threads_ = cpus;
  }
  if (n_threads_ > 1) pool_ = pthreadpool_create(n_threads_);
  if (!pool_) n_threads_ = 1;
}

ThreadPool::~ThreadPool() {
  if (pool_) pthreadpool_destroy(pool_);
}

}  // namespace ember
