// Multi-threaded f32 GEMM over the kernel table's gemm_f32_tile, for training's gradient products:
// C (m, n) = [C +] A (m, k) B (k, n) [+ bias], A and B given as strided views, so one routine serves
// both backward products of a linear layer without transposing copies:
//
//   dx  = dy W          A = dy (rows, out)        B = W (out, in)          gemm_f32_packed (W packed per step)
//   dW += dy^T x        A(i, k) = dy[k][i]        B = x (rows, in)         gemm_f32 (x packed per call)
//
// (train/ops.h: linear_backward. The forward, y = x W^T + b, runs on XNNPACK as in the runtime.)
// Why these are not XNNPACK too: its fully-connected operator cannot accumulate into C, read a
// transposed A or share its packed weights between threads, so dW needs a transposed copy of dy, a
// temporary and an add, and data-parallel shards need an operator each. Measured on nanoGPT's shapes
// (bench_train, AMD EPYC with AVX-512, 2 threads, 5 alternating runs, 2026-12-05): all three products
// on XNNPACK 40.5 ms per step against 31.6 with all three on ember's GEMM (backward 27.2 ms); the
// table in docs/training.md has the rest.
//
// B is always packed into 16-column panels (reading a row-major B in place thrashes L1 sets when its
// row stride is a multiple of 512 bytes, as activation and weight rows are): weights once per
// optimizer step with gemm_pack_b + gemm_f32_packed (tasks split the rows of C), activations per call
// by gemm_f32 (tasks split the columns of C and each packs its own panels, so packing costs no extra
// pass or barrier). Every element of C is computed by one task with the same sequence of operations
// (gemm_f32_tile's, the same bits on every table) whatever the thread count.
// Thread safety: reentrant; pool may be nullptr (runs on the calling thread).
#pragma once

#include <cstddef>

#include "core/threadpool.h"
#include "kernels/kernels.h"

namespace ember {

// Element (i, j) of a strided matrix is p[i * rs + j * cs].
struct MatRef {
  const float* p;
  size_t rs, cs;
};

// Floats of packed panels for a (k, n) B operand.
size_t gemm_pack_floats(size_t k, size_t n);
// Packs B (k, n) into 16-column panels (zero-padded) at `pack` (gemm_pack_floats(k, n) floats).
void gemm_pack_b(size_t k, size_t n, MatRef b, float* pack);

// C[i * ldc + j] = (accumulate ? C[i * ldc + j] : 0) + sum_p A(i, p) B(p, j) + (bias ? bias[j] : 0).
// a_rowsum (optional, m floats): a_rowsum[i] += sum_p A(i, p), computed by the task that owns row i
// (the bias gradient rides along with dW this way). k == 0 gives C = [C +] bias.
// `pack` receives the packed B (gemm_pack_floats(k, n) floats).
void gemm_f32(ThreadPool* pool, const Kernels& K, size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias,
              float* c, size_t ldc, bool accumulate, float* pack, float* a_rowsum = nullptr);
// The same with B already packed by gemm_pack_b.
void gemm_f32_packed(ThreadPool* pool, const Kernels& K, size_t m, size_t n, size_t k, MatRef a, const float* packed_b,
                     const float* bias, float* c, size_t ldc, bool accumulate, float* a_rowsum = nullptr);

// The same product accumulated in double, single-threaded: the test oracle.
void gemm_f32_ref(size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias, float* c, size_t ldc,
                  bool accumulate);

}  // namespace ember
