// A zero-filled array in its own anonymous mapping: page-aligned (so rows whose byte stride is a multiple
// of 64 start on cache lines, as the SIMD attention kernels' loads want), and committed (counted in RSS)
// only as it is written: a KV cache sized for n_ctx costs what the tokens actually cached use.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "ember/status.h"

namespace ember {

template <typename T>
class ZeroBuffer {
 public:
  ZeroBuffer() = default;
  ~ZeroBuffer() { release(); }
  ZeroBuffer(const ZeroBuffer&) = delete;
  ZeroBuffer& operator=(const ZeroBuffer&) = delete;
  Status allocate(size_t n, const char* what) {
    release();
    if (n > (SIZE_MAX - 4095) / sizeof(T)) return internal_error(std::string("out of memory allocating ") + what);
    const size_t bytes = (n ? n : 1) * sizeof(T);
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return internal_error(std::string("out of memory allocating ") + what);
    p_ = static_cast<T*>(p);
    n_ = n;
    bytes_ = bytes;
    return Status::Ok();
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_) munmap(p_, bytes_);
    p_ = nullptr;
    n_ = bytes_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0, bytes_ = 0;
};

}  // namespace ember
