// The SIMD tables of an AArch64 build. NEON (Advanced SIMD) is part of every AArch64 CPU, so "neon" is
// always listed; "neondot" (the ARMv8.2 dot product, optional before ARMv8.4) when the build has it and
// cpuinfo reports it. cpuinfo reads the kernel's HWCAP, which qemu-user fills from the emulated CPU:
// QEMU_CPU=cortex-a53 hides the dot product, qemu's default "max" CPU has it. Baseline flags.
#include <cpuinfo.h>

#include "kernels/kernels.h"
#include "kernels/neon/kernels_neon.h"

namespace ember {

std::vector<const Kernels*> simd_kernels() {
  std::vector<const Kernels*> v;
  // The CPU check first: neondot_kernels() itself is code built for ARMv8.2-A.
  if (cpuinfo_initialize() && cpuinfo_has_arm_neon_dot())
    if (const Kernels* dot = neondot_kernels()) v.push_back(dot);
  v.push_back(&neon_kernels());
  return v;
}

}  // namespace ember
