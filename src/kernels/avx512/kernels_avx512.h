// The "avx512" kernel table (x86-64): the "avxvnni" table (the "avx2" one on a CPU without AVX-VNNI)
// with the int8 GEMM, the activation quantizer and the attention kernels on AVX-512 (F, BW, VL and
// VNNI: Ice Lake / Sapphire Rapids and later Xeons, Zen 4 and later). Compiled into its own static
// library with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (src/meson.build); call nothing here
// unless cpu_has_avx512() (select_x86.cpp) is true. The rule of kernels_avx2.h holds for that library
// too: no global objects with dynamic initialisation, no inline functions or templates with external
// linkage; everything in an anonymous namespace but the entry points below.
#pragma once

#include "kernels/kernels.h"

namespace ember {

// The "avx512" table; nullptr when the compiler could not build it (avx512_absent.cpp). Call only on a
// CPU for which cpu_has_avx512() is true.
const Kernels* avx512_kernels();
// CPUID leaf 7 (sub-leaf 0): AVX512F (EBX 16), AVX512BW (EBX 30), AVX512VL (EBX 31), AVX512_VNNI (ECX 11),
// and the OS check: OSXSAVE (leaf 1, ECX 27) and XCR0 bits 1, 2 (SSE, AVX state) and 5, 6, 7 (opmask,
// upper halves of zmm0-15, zmm16-31) all set. Asked of CPUID itself: cpuinfo of Debian 12 lacks
// some of these flags. In select_x86.cpp (baseline flags).
bool cpu_has_avx512();

// Entry points of gemm_q8_avx512.cpp (the table is in kernels_avx512.cpp).
void quantize_rows_q8_avx512(const float* x, size_t rows, size_t n, int8_t* q, float* scale);
void gemm_q8_tile_avx512(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
// Entry point of gemm_q4_avx512.cpp.
void gemm_q4_tile_avx512(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
void gemm_q8_avx512(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                    const float* bias, float* y, size_t in, size_t out);

}  // namespace ember
