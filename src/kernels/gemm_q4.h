// Multi-threaded int4 linear layer over the kernel table's gemm_q4_tile (kernels.h, format/q4.h).
//
//   K.quantize_rows_q8(x, batch, in, xq, xs);                  // (batch, in) -> int8 + (batch)
//   gemm_q4_parallel(pool, K, GemmQ4Args{xq, xs, nullptr, w, ws, bias, y, batch, in, out, group}, xg);
//
// Fills xg (batch * in / group int32, the caller's scratch) with the activations' group sums (a.xg is
// ignored: the tiles get xg), then splits
// the work like gemm_q8_parallel: output rows only for batch <= kGemmQ8TokenTile (in tiles of a multiple
// of 16 rows, about 8 per thread), tokens and rows for larger batches. pool == nullptr runs the tiles on
// the calling thread. Allocates nothing; blocks until y is complete. Not reentrant on the same pool.
#pragma once

#include "core/threadpool.h"
#include "kernels/kernels.h"

namespace ember {

// xg[t][g] = sum of xq[t][g * group .. (g + 1) * group), for t < batch.
void q8_group_sums(const int8_t* xq, size_t batch, size_t in, size_t group, int32_t* xg);

void gemm_q4_parallel(ThreadPool* pool, const Kernels& K, const GemmQ4Args& args, int32_t* xg);

}  // namespace ember
