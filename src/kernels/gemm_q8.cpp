#include "kernels/gemm_q8.h"

#include "core/threadpool.h"

namespace ember {
namespace {

struct Task {
  const Kernels* K;
  const GemmQ8Args* a;
};

void out_tiles(void* ctx, size_t o0, size_t n) {
  const Task& t = *static_cast<const Task*>(ctx);
  t.K->gemm_q8_tile(*t.a, 0, t.a->batch, o0, o0 + n);
}

void token_out_tiles(void* ctx, size_t t0, size_t o0, size_t nt, size_t no) {
  const Task& t = *static_cast<const Task*>(ctx);
  t.K->gemm_q8_tile(*t.a, t0, t0 + nt, o0, o0 + no);
}

}  // namespace

void gemm_q8_parallel(pthreadpool_t pool, const Kernels& K, const GemmQ8Args& a) {
  if (a.batch == 0 || a.out == 0) return;
  Task task{&K, &a};
  if (a.batch <= kGemmQ8TokenTile) {
    const size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
    if (threads <= 1) {
      K.gemm_q8_tile(a, 0, a.batch, 0, a.out);
      return;
    }
    size_t tile = (a.out + threads * 8 - 1) / (threads * 8);
    tile = tile < 16 ? 16 : (tile + 3) / 4 * 4;
    pthreadpool_parallelize_1d_tile_1d(pool, out_tiles, &task, a.out, tile, parallel_flags());
    return;
  }
  pthreadpool_parallelize_2d_tile_2d(pool, token_out_tiles, &task, a.batch, a.out, kGemmQ8TokenTile, kGemmQ8OutTile, parallel_flags());
}

}  // namespace ember
