// avxvnni_kernels() of a build whose compiler has no -mavxvnni (src/meson.build): select_x86.cpp then
// lists "avx2" only.
#include "kernels/avx2/kernels_avx2.h"

namespace ember {

const Kernels* avxvnni_kernels() { return nullptr; }

}  // namespace ember
