// avx512_kernels() of a build whose compiler cannot build the AVX-512 library (src/meson.build):
// select_x86.cpp then lists "avxvnni" / "avx2" only.
#include "kernels/avx512/kernels_avx512.h"

namespace ember {

const Kernels* avx512_kernels() { return nullptr; }

}  // namespace ember
