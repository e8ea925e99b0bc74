// A zero-filled array from calloc. For large sizes the C library maps fresh zero pages, so memory is
// only committed (and counted in RSS) as it is written: a KV cache sized for n_ctx costs what the
// tokens actually cached use.
#pragma once

#include <cstddef>
#include <cstdlib>

#include "ember/status.h"

namespace ember {

template <typename T>
class ZeroBuffer {
 public:
  ZeroBuffer() = default;
  ~ZeroBuffer() { std::free(p_); }
  ZeroBuffer(const ZeroBuffer&) = delete;
  ZeroBuffer& operator=(const ZeroBuffer&) = delete;
  Status allocate(size_t n, const char* what) {
    std::free(p_);
    p_ = static_cast<T*>(std::calloc(n ? n : 1, sizeof(T)));
    n_ = p_ ? n : 0;
    if (!p_) return internal_error(std::string("out of memory allocating ") + what);
    return Status::Ok();
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](size_t i) { return p_[i]; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace ember
