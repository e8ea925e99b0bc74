// RAII owner of a pthreadpool (nullptr pool = run on the calling thread), and the thread policy.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <cstdint>

#include "ember/session.h"  // available_cpus()

namespace ember {

// Flags for every pthreadpool_parallelize_* call ember makes (XNNPACK's operators get the matching
// XNN_FLAG_YIELD_WORKERS). See kYieldWorkers in threadpool.cpp for the measurement behind the choice.
uint32_t parallel_flags();

class ThreadPool {
 public:
  // n_threads <= 1: no pool. More threads than available_cpus() are capped to it unless `oversubscribe`:
  // pthreadpool's threads spin while they wait, so threads beyond the cores only take turns wasting
  // them (5 tokens of a small model: 0.06 s at 2 threads on 2 cores, 27 s at 32).
  explicit ThreadPool(size_t n_threads, bool oversubscribe = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  pthreadpool_t get() const { return pool_; }
  size_t n_threads() const { return n_threads_; }

 private:
  pthreadpool_t pool_ = nullptr;
  size_t n_threads_ = 1;
};

}  // namespace ember
