// The "neondot" table: the "neon" table with the int8 GEMM on the ARMv8.2 dot product instruction
// (qs8-gemm-4x4-neondot). sdot adds four int8 x int8 products into each int32 lane directly: exact for
// every int8 value, no int16 stage. 4 rows x 4 tokens: 16 accumulators + 4 activation vectors + 1 weight
// vector of the 32 NEON registers. Compiled for ARMv8.2-A + dotprod (src/meson.build): call only when
// cpuinfo reports cpuinfo_has_arm_neon_dot() (select_arm.cpp).
#include <arm_neon.h>

#include "kernels/neon/gemm_q8_neon_impl.h"
#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

struct Sdot {
  static int32x4_t add(int32x4_t acc, int8x16_t x, int8x16_t w) { return vdotq_s32(acc, x, w); }
};

void gemm_q8_tile_neondot(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q8_tile_impl<Sdot, 4>(a, t0, t1, o0, o1);
}

void gemm_q8_neondot(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                     const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_neondot(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

}  // namespace

const Kernels* neondot_kernels() {
  // A function-local static: built at the first call, after select_arm.cpp's cpuinfo check.
  static const Kernels k = [] {
    Kernels t = neon_kernels();
    t.name = "neondot";
    t.gemm_q8 = gemm_q8_neondot;
    t.gemm_q8_tile = gemm_q8_tile_neondot;
    t.gemm_q4_tile = gemm_q4_tile_neondot;
    return t;
  }();
  return &k;
}

}  // namespace ember
