// ember's own kernels behind one dispatch table, filled once at start from cpuinfo.
// Every entry has a plain scalar reference (kernels/ref) that is the test oracle and the fallback;
// ISA versions (kernels/avx2, kernels/neon) are drop-ins tested against it.
#pragma once

#include <cstddef>

namespace ember {

struct Kernels {
  const char* name;  // "ref", "avx2", "neon"
  // y = (x - mean) / sqrt(var + eps) * g + b over n elements (population variance).
  void (*layernorm_f32)(const float* x, const float* g, const float* b, float* y, size_t n, float eps);
  // In place, n elements.
  void (*gelu_tanh_f32)(float* x, size_t n);
  void (*gelu_erf_f32)(float* x, size_t n);
  void (*relu_f32)(float* x, size_t n);
  // In place softmax over n elements (max-subtracted).
  void (*softmax_f32)(float* x, size_t n);
  float (*dot_f32)(const float* a, const float* b, size_t n);
  // y += a * x
  void (*axpy_f32)(float a, const float* x, float* y, size_t n);
  // y += x
  void (*add_f32)(const float* x, float* y, size_t n);
};

const Kernels& reference_kernels();
// The best table for this CPU, chosen once (thread-safe static initialisation).
const Kernels& kernels();

}  // namespace ember
