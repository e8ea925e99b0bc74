// The SIMD tables of a build without any: `-Dkernels=ref`, or a CPU family whose kernels are not
// written yet. kernels() then returns the reference.
#include "kernels/kernels.h"

namespace ember {

std::vector<const Kernels*> simd_kernels() { return {}; }

}  // namespace ember
