// The AVX2 + FMA kernel table (x86-64). Compiled into its own static library with -mavx2 -mfma -mf16c;
// call nothing here unless cpuinfo reported AVX2, FMA3 and F16C (select_x86.cpp does the check).
//
// Rule for the files of that library: no global objects with dynamic initialisation and no inline
// functions or templates with external linkage (std::min, std::vector, <cmath> overloads ...). Both
// would let AVX2 code run on a CPU without it: constructors run at load, and the linker may keep this
// library's copy of an inline function for the whole program. Everything lives in an anonymous
// namespace, uses intrinsics and C functions, and only the entry points below have external linkage.
#pragma once

#include "kernels/kernels.h"

namespace ember {

const Kernels& avx2_kernels();
// The "avxvnni" table (gemm_q8_avxvnni.cpp): avx2 with the int8 GEMM on vpdpbusd; nullptr when the
// compiler could not build it. Call only on a CPU with AVX-VNNI (cpu_has_avxvnni()).
const Kernels* avxvnni_kernels();
// CPUID leaf 7, sub-leaf 1, EAX bit 4 (cpuinfo of Debian 12 predates the flag); the OS's YMM state
// support is cpuinfo's AVX2 check, which the caller makes first. In select_x86.cpp (baseline flags).
bool cpu_has_avxvnni();

// Entry points of gemm_q8_avx2.cpp (the table is in kernels_avx2.cpp).
void quantize_rows_q8_avx2(const float* x, size_t rows, size_t n, int8_t* q, float* scale);
void gemm_q8_tile_avx2(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
void gemm_q8_avx2(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                  const float* bias, float* y, size_t in, size_t out);

// Entry points of gemm_q4_avx2.cpp and gemm_q4_avxvnni.cpp (the latter only in the avxvnni library).
void gemm_q4_tile_avx2(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
void gemm_q4_tile_avxvnni(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);

// Entry point of gemm_f32_avx2.cpp.
void gemm_f32_tile_avx2(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b, float* c,
                        size_t ldc, bool acc, const float* bias);

}  // namespace ember
