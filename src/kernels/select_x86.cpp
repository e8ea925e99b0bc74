// The SIMD tables of an x86 build, best first ("avx512", "avxvnni", "avx2"), filtered by what cpuinfo and
// CPUID report for this CPU. Compiled with the baseline flags (it runs before anything is known about
// the CPU).
#include <cpuid.h>
#include <cpuinfo.h>

#include "kernels/avx2/kernels_avx2.h"
#include "kernels/avx512/kernels_avx512.h"
#include "kernels/kernels.h"

namespace ember {

bool cpu_has_avxvnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 4) & 1u;
}

bool cpu_has_avx512() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE: XGETBV usable
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool f = (b >> 16) & 1u, bw = (b >> 30) & 1u, vl = (b >> 31) & 1u, vnni = (c >> 11) & 1u;
  if (!(f && bw && vl && vnni)) return false;
  unsigned lo = 0, hi = 0;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));  // XCR0 (no -mxsave needed for the instruction)
  const unsigned want = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);  // SSE, AVX, opmask, zmm
  return (lo & want) == want;
}

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> v;
  // cpuinfo's AVX2 / FMA3 answers include the OS check (XCR0 saves the YMM state).
  if (cpuinfo_initialize() && cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c()) {
    // The CPU check first: avx512_kernels() and avxvnni_kernels() are code built for those ISAs.
    if (cpu_has_avx512())
      if (const Kernels* avx512 = avx512_kernels()) v.push_back(avx512);
    if (cpu_has_avxvnni())
      if (const Kernels* vnni = avxvnni_kernels()) v.push_back(vnni);
    v.push_back(&avx2_kernels());
  }
  return v;
}

}  // namespace ember
