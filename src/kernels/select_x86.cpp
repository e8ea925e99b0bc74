// The SIMD tables of an x86 build, filtered by what cpuinfo reports for this CPU. Compiled with the
// baseline flags (it runs before anything is known about the CPU).
#include <cpuid.h>
#include <cpuinfo.h>

#include "kernels/avx2/kernels_avx2.h"
#include "kernels/kernels.h"

namespace ember {

bool cpu_has_avxvnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 4) & 1u;
}

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> v;
  // cpuinfo's AVX2 / FMA3 answers include the OS check (XCR0 saves the YMM state).
  if (cpuinfo_initialize() && cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c()) {
    // The CPU check first: avxvnni_kernels() itself is code built for AVX-VNNI.
    if (cpu_has_avxvnni())
      if (const Kernels* vnni = avxvnni_kernels()) v.push_back(vnni);
    v.push_back(&avx2_kernels());
  }
  return v;
}

}  // namespace ember
