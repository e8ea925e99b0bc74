#include "kernels/gemm_q4.h"

#include "format/q4.h"
#include "kernels/gemm_q8.h"

namespace ember {

void q8_group_sums(const int8_t* xq, size_t batch, size_t in, size_t group, int32_t* xg) {
  const size_t groups = in / group;
  for (size_t t = 0; t < batch; ++t)
    for (size_t g = 0; g < groups; ++g) {
      const int8_t* x = xq + t * in + g * group;
      int32_t s = 0;
      for (size_t k = 0; k < group; ++k) s += x[k];
      xg[t * groups + g] = s;
    }
}

void gemm_q4_parallel(ThreadPool* pool, const Kernels& K, const GemmQ4Args& args, int32_t* xg) {
  if (args.batch == 0 || args.out == 0) return;
  q8_group_sums(args.xq, args.batch, args.in, args.group, xg);
  GemmQ4Args a = args;
  a.xg = xg;
  const size_t threads = threads_of(pool);
  auto tile_of = [&](size_t n, size_t per_thread) {
    size_t tile = (n + threads * per_thread - 1) / (threads * per_thread);
    return (tile + kQ4BlockRows - 1) / kQ4BlockRows * kQ4BlockRows;
  };
  if (a.batch <= kGemmQ8TokenTile) {
    if (threads <= 1) {
      K.gemm_q4_tile(a, 0, a.batch, 0, a.out);
      return;
    }
    parallel_for_tiles(pool, a.out, tile_of(a.out, 8), [&](size_t o0, size_t n) { K.gemm_q4_tile(a, 0, a.batch, o0, o0 + n); });
    return;
  }
  parallel_for_tiles_2d(pool, a.batch, a.out, kGemmQ8TokenTile, kGemmQ8OutTile,
                        [&](size_t t0, size_t o0, size_t nt, size_t no) { K.gemm_q4_tile(a, t0, t0 + nt, o0, o0 + no); });
}

}  // namespace ember
