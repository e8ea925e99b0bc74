// The "avxvnni" table: the "avx2" table with the int8 GEMM on AVX-VNNI's vpdpbusd (VEX-encoded, 256-bit:
// Alder Lake, Sapphire Rapids, Zen 4 and later), which adds four u8 x s8 products into each int32 lane
// in one instruction where AVX2 needs vpmaddubsw + vpmaddwd + vpaddd. The same register tile and sign
// trick (gemm_q8_avx2_impl.h), so the same exact sums and bits. Compiled with -mavxvnni (src/meson.build):
// call only when select_x86.cpp's CPUID check reports AVX-VNNI.
#include <immintrin.h>

#include "kernels/avx2/gemm_q8_avx2_impl.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

struct Dpbusd {
  static __m256i add(__m256i acc, __m256i ax, __m256i sw) { return _mm256_dpbusd_avx_epi32(acc, ax, sw); }
};

void gemm_q8_tile_avxvnni(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q8_tile_impl<Dpbusd>(a, t0, t1, o0, o1);
}

void gemm_q8_avxvnni(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                     const float* bias, float* y, size_t in, size_t out) {
  gemm_q8_tile_avxvnni(GemmQ8Args{xq, xs, w, ws, bias, y, batch, in, out}, 0, batch, 0, out);
}

}  // namespace

const Kernels* avxvnni_kernels() {
  // A function-local static: built at the first call, after select_x86.cpp's CPU check.
  static const Kernels k = [] {
    Kernels t = avx2_kernels();
    t.name = "avxvnni";
    t.gemm_q8 = gemm_q8_avxvnni;
    t.gemm_q8_tile = gemm_q8_tile_avxvnni;
    return t;
  }();
  return &k;
}

}  // namespace ember
