// Chooses the kernel table once. ISA tables (AVX2, NEON) plug in here as they are added; until
// then every CPU runs the reference kernels.
#include "kernels/kernels.h"

namespace ember {

const Kernels& kernels() {
  static const Kernels& chosen = reference_kernels();
  return chosen;
}

}  // namespace ember
