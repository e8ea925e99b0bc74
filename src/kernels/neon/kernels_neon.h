// The NEON kernel tables (AArch64). Two static libraries with their own flags, chosen by select_arm.cpp:
//   "neon"     kernels_neon.cpp + gemm_q8_neon.cpp: Advanced SIMD, part of every AArch64 CPU (baseline
//              flags). The int8 GEMM multiplies with vmull_s8 / vmlal_s8 and widens with vpadalq_s16.
//   "neondot"  gemm_q8_neondot.cpp, built for ARMv8.2-A + dotprod: the same table with the int8 GEMM on
//              the dot product instructions (sdot, vdotq_s32). Call it only when cpuinfo reports
//              cpuinfo_has_arm_neon_dot() (Cortex-A55/A75/A76 and later; not A53/A57/A72). Not built
//              for a CPU layer that names a CPU without it (neondot_absent.cpp, see src/meson.build).
//
// The f32 kernels are lane-for-lane transcriptions of the AVX2 ones (kernels/avx2): each __m256 is a
// pair of float32x4_t, partial sums live in the same lanes and are reduced in the same order, the
// polynomials are evaluated with the same fused multiply-adds, tails contribute zeros as the masked
// loads do. So for the same input an ARM board computes bit for bit what an AVX2 x86-64 computes
// (tests/kernels checks it against digests of the AVX2 results). This needs the project-wide
// -ffp-contract=off (meson.build): GCC would otherwise fuse a vmulq_f32 and a vaddq_f32 into one FMA.
//
// The rule of kernels_avx2.h holds for the neondot library: no global objects with dynamic
// initialisation and no inline functions or templates with external linkage, so that no dotprod code
// can run on a CPU without it.
#pragma once

#include "kernels/kernels.h"

namespace ember {

const Kernels& neon_kernels();
// nullptr when this build has no dot product library. Call only after cpuinfo_has_arm_neon_dot().
const Kernels* neondot_kernels();

// Entry points of gemm_q8_neon.cpp (the "neon" table is in kernels_neon.cpp).
void quantize_rows_q8_neon(const float* x, size_t rows, size_t n, int8_t* q, float* scale);
void gemm_q8_tile_neon(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
void gemm_q8_neon(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                  const float* bias, float* y, size_t in, size_t out);

// Entry points of gemm_q4_neon.cpp and gemm_q4_neondot.cpp (the latter only in the neondot library).
void gemm_q4_tile_neon(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
void gemm_q4_tile_neondot(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);

// Entry point of gemm_f32_neon.cpp.
void gemm_f32_tile_neon(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c,
                        size_t ldc, bool acc, const float* bias);

}  // namespace ember
