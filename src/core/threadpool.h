// RAII owner of a pthreadpool (nullptr pool = run on the calling thread).
#pragma once

#include <pthreadpool.h>

#include <cstddef>

namespace ember {

class ThreadPool {
 public:
  explicit ThreadPool(size_t n_threads);  // n_threads <= 1: no pool
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
