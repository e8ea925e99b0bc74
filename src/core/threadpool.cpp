#include "core/threadpool.h"

namespace ember {

ThreadPool::ThreadPool(size_t n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  if (n_threads_ > 1) pool_ = pthreadpool_create(n_threads_);
  if (!pool_) n_threads_ = 1;
}

ThreadPool::~ThreadPool() {
  if (pool_) pthreadpool_destroy(pool_);
}

}  // namespace ember
