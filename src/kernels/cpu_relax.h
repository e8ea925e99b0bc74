// The spin-wait hint of this CPU, for the thread pool's waiting loop (core/threadpool.cpp): x86 `pause`,
// ARM `yield`, nothing elsewhere. Here so that every ISA conditional of ember lives under src/kernels/.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ember {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

}  // namespace ember
