// Multi-threaded int8 linear layer over the kernel table's gemm_q8_tile.
//
//   K.quantize_rows_q8(x, batch, in, xq, xs);                      // (batch, in) -> int8 + (batch)
//   gemm_q8_parallel(pool, K, GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out});
//
// Split: batch <= kGemmQ8TokenTile (decode, small prefill chunks) splits the output channels only, in
// tiles of a multiple of 4 rows, about 8 per thread so the pool's shared counter balances them; larger
// batches split tokens too (kGemmQ8TokenTile x kGemmQ8OutTile tiles, which also keeps each tile's
// weights and activations in L2). pool == nullptr runs the same tiles on the calling thread.
// Allocates nothing; blocks until y is complete. Not reentrant on the same pool.
#pragma once

#include "core/threadpool.h"
#include "kernels/kernels.h"

namespace ember {

constexpr size_t kGemmQ8TokenTile = 64;
constexpr size_t kGemmQ8OutTile = 128;

void gemm_q8_parallel(ThreadPool* pool, const Kernels& K, const GemmQ8Args& a);

}  // namespace ember
