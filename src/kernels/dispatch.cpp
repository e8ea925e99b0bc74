// Chooses the kernel table once. The SIMD tables compiled into this build come from select_<family>.cpp
// (chosen by meson from host_machine.cpu_family() and the `kernels` option), so no ISA #ifdef is needed.
#include <cstdlib>
#include <cstring>

#include "kernels/kernels.h"

namespace ember {

const Kernels& choose_kernels(const char* request) {
  if (request != nullptr && std::strcmp(request, "ref") == 0) return reference_kernels();
  const std::vector<const Kernels*> simd = simd_kernels();
  if (request != nullptr)
    for (const Kernels* k : simd)
      if (std::strcmp(request, k->name) == 0) return *k;
  return simd.empty() ? reference_kernels() : *simd.front();
}

const Kernels& kernels() {
  static const Kernels& chosen = choose_kernels(std::getenv("EMBER_KERNELS"));
  return chosen;
}

}  // namespace ember
