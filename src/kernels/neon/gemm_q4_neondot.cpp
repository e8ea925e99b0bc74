// The "neondot" table's int4 GEMM (gemm_q4_neon_impl.h): sdot adds each row lane's 4 products directly.
// Built for ARMv8.2-A + dotprod (src/meson.build): call only after select_arm.cpp's cpuinfo check.
#include "kernels/neon/gemm_q4_neon_impl.h"
#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

struct Sdot {
  static int32x4_t add(int32x4_t acc, int8x16_t w, int8x16_t x) { return vdotq_s32(acc, w, x); }
};

}  // namespace

void gemm_q4_tile_neondot(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q4_tile_impl<Sdot>(a, t0, t1, o0, o1);
}

}  // namespace ember
