// The SIMD tables of an x86 build, filtered by what cpuinfo reports for this CPU. Compiled with the
// baseline flags (it runs before anything is known about the CPU).
#include <cpuinfo.h>

#include "kernels/avx2/kernels_avx2.h"
#include "kernels/kernels.h"

namespace ember {

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> v;
  // cpuinfo's AVX2 / FMA3 answers include the OS check (XCR0 saves the YMM state).
  if (cpuinfo_initialize() && cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c())
    v.push_back(&avx2_kernels());
  return v;
}

}  // namespace ember
