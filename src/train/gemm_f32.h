// Float GEMM for training: C (m, n) = [C +] A (m, k) B (k, n) [+ bias], with A and B given as strided
// views so that one routine serves all three products of a linear layer without transposing copies:
//
//   forward   y  = x W^T + b     A = x (rows, in)          B(k, j) = W[j][k]    (W stored [out, in])
//   backward  dx = dy W          A = dy (rows, out)        B = W (out, in)
//             dW += dy^T x       A(i, k) = dy[k][i]        B = x (rows, in)
//
// (linear_forward / linear_backward in ops.h spell these out; attention uses it per head.)
// Why not XNNPACK: its fully-connected operator packs the weights when it is created, and in training
// the operands change every step; for dW the packed operand would be the activations (a transposed
// copy per call), and re-creating operators allocates. Measured on one core of the development
// machine (Xeon, nanoGPT shapes: 768 rows by 128x384, 128x128, 128x512, 512x128): this AVX2 kernel
// 98-109 GFLOP/s forward and dx, 75-88 dW (+ bias); XNNPACK 139-147 run only, 126-132 created per
// call -- but there it runs AVX-512 (zmm) micro-kernels; on an AVX2-only CPU both use 8-wide FMAs.
// An AVX-512 variant of the micro-kernel below is the way to that last 30% (kernels/ territory).
//
// B is always packed into 16-column panels (reading a row-major B in place thrashes L1 sets when its
// row stride is a multiple of 512 bytes, as activation and weight rows are): weights once per
// optimizer step with gemm_pack_b + gemm_f32_packed (tasks split the rows of C), activations per call
// by gemm_f32 (tasks split the columns of C and each packs its own panels, so packing costs no extra
// pass or barrier).
// Kernels: an AVX2+FMA 6x16 register-blocked micro-kernel (compiled with a target attribute and used
// when ember's kernel table is an x86 SIMD one, so EMBER_KERNELS=ref also turns it off) and a scalar fallback.
// Every element of C is computed by one task with the same sequence of operations whatever the
// thread count, so results are bitwise identical at 1 or N threads.
// Thread safety: reentrant; pool may be nullptr (runs on the calling thread).
#pragma once

#include <cstddef>

#include "core/threadpool.h"

namespace ember {
namespace train {

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
void gemm_f32(ThreadPool* pool, size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias, float* c,
              size_t ldc, bool accumulate, float* pack, float* a_rowsum = nullptr);
// The same with B already packed by gemm_pack_b.
void gemm_f32_packed(ThreadPool* pool, size_t m, size_t n, size_t k, MatRef a, const float* packed_b,
                     const float* bias, float* c, size_t ldc, bool accumulate, float* a_rowsum = nullptr);

// The same product accumulated in double, single-threaded: the test oracle.
void gemm_f32_ref(size_t m, size_t n, size_t k, MatRef a, MatRef b, const float* bias, float* c, size_t ldc,
                  bool accumulate);

// True when gemm_f32 uses the AVX2 micro-kernel on this machine.
bool gemm_f32_uses_avx2();

}  // namespace train
}  // namespace ember
