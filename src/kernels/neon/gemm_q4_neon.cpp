// The "neon" table's int4 GEMM (gemm_q4_neon_impl.h): 16 int8 x int8 products by vmull_s8 / vmull_high_s8
// (|q x| <= 8 * 127: exact in int16), pairwise added (vpaddq_s16: <= 2032) and widened into the 4 row
// lanes (vpadalq_s16).
#include "kernels/neon/gemm_q4_neon_impl.h"
#include "kernels/neon/kernels_neon.h"

namespace ember {
namespace {

struct Mull {
  static int32x4_t add(int32x4_t acc, int8x16_t w, int8x16_t x) {
    const int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(x)), hi = vmull_high_s8(w, x);
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
  }
};

}  // namespace

void gemm_q4_tile_neon(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q4_tile_impl<Mull>(a, t0, t1, o0, o1);
}

}  // namespace ember
