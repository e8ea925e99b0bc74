// Linear layers on XNNPACK's f32 fully-connected operator: y[batch, out] = x[batch, in] W^T + b,
// W stored [out, in]. The operator (and its packed copy of W) is created once; run() only binds
// pointers and runs, so it allocates nothing. The only file that includes xnnpack.h besides its .cpp.
#pragma once

#include <pthreadpool.h>

#include <cstddef>
#include <memory>
#include <string>

#include "ember/status.h"

struct xnn_operator;

namespace ember {

// Initializes XNNPACK once per process; safe to call from any thread.
Status xnn_init_once();

class LinearF32 {
 public:
  LinearF32() = default;
  // Packs `w` ([out, in]) and `b` ([out] or nullptr); neither needs to outlive the call.
  static Result<LinearF32> create(const float* w, const float* b, size_t in, size_t out, const std::string& name);
  // Not thread-safe on one LinearF32 (XNNPACK operators hold the bound pointers).
  Status run(size_t batch, const float* x, float* y, pthreadpool_t pool) const;
  size_t in() const { return in_; }
  size_t out() const { return out_; }

 private:
  struct Deleter {
    void operator()(xnn_operator* op) const;
  };
  std::unique_ptr<xnn_operator, Deleter> op_;
  size_t in_ = 0, out_ = 0;
  std::string name_;
};

// Scalar reference of the same computation (the test oracle).
void linear_f32_ref(const float* x, const float* w, const float* b, float* y, size_t batch, size_t in, size_t out);

}  // namespace ember
