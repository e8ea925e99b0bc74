#include "kernels/gemm_q8.h"

namespace ember {

void gemm_q8_parallel(ThreadPool* pool, const Kernels& K, const GemmQ8Args& a) {
  if (a.batch == 0 || a.out == 0) return;
  if (a.batch <= kGemmQ8TokenTile) {
    const size_t threads = threads_of(pool);
    if (threads <= 1) {
      K.gemm_q8_tile(a, 0, a.batch, 0, a.out);
      return;
    }
    size_t tile = (a.out + threads * 8 - 1) / (threads * 8);
    tile = tile < 16 ? 16 : (tile + 3) / 4 * 4;
    parallel_for_tiles(pool, a.out, tile, [&](size_t o0, size_t n) { K.gemm_q8_tile(a, 0, a.batch, o0, o0 + n); });
    return;
  }
  parallel_for_tiles_2d(pool, a.batch, a.out, kGemmQ8TokenTile, kGemmQ8OutTile,
                        [&](size_t t0, size_t o0, size_t nt, size_t no) { K.gemm_q8_tile(a, t0, t0 + nt, o0, o0 + no); });
}

}  // namespace ember
