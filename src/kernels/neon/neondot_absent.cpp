// neondot_kernels() of a build without the dot product library (a CPU layer for a CPU without it, see
// src/meson.build): select_arm.cpp then lists "neon" only.
#include "kernels/neon/kernels_neon.h"

namespace ember {

const Kernels* neondot_kernels() { return nullptr; }

}  // namespace ember
