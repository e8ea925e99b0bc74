// The "avxvnni" table: the "avx2" table with the int8 GEMM on AVX-VNNI's vpdpbusd (VEX-encoded, 256-bit:
// Alder Lake, Sapphire Rapids, Zen 4 and later), which adds four u8 x s8 products into each int32 lane
// in one instruction where AVX2 needs vpmaddubsw + vpmaddwd + vpaddd, and takes the activations as
// x + 128 with a per-row correction instead of the sign trick's two extra instructions per product
// vector. The same register tile (gemm_q8_avx2_impl.h), exact sums, the reference's bits. Compiled with -mavxvnni (src/meson.build):
// call only when select_x86.cpp's CPUID check reports AVX-VNNI.
#include <immintrin.h>

#include "kernels/avx2/gemm_q8_avx2_impl.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

// x + 128 against w, corrected by 128 * sum(w) per row: one instruction per 32 products.
struct DpbusdOffset {
  static constexpr bool kOffsetX = true;
  static constexpr int kTileT = 3;
  static __m256i xop(__m256i x) { return _mm256_xor_si256(x, _mm256_set1_epi8(static_cast<char>(0x80))); }
  static __m256i add(__m256i acc, __m256i xu, __m256i, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, xu, w); }
};

// The sign trick: no row-sum pass, for a token or two (decode), where that pass would not be shared.
struct DpbusdSign {
  static constexpr bool kOffsetX = false;
  static constexpr int kTileT = 2;
  static __m256i xop(__m256i x) { return _mm256_abs_epi8(x); }
  static __m256i add(__m256i acc, __m256i ax, __m256i x, __m256i w) {
    return _mm256_dpbusd_avx_epi32(acc, ax, _mm256_sign_epi8(w, x));
  }
};

void gemm_q8_tile_avxvnni(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  if (t1 - t0 >= 4)
    gemm_q8_tile_impl<DpbusdOffset>(a, t0, t1, o0, o1);
  else
    gemm_q8_tile_impl<DpbusdSign>(a, t0, t1, o0, o1);
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
    t.gemm_q4_tile = gemm_q4_tile_avxvnni;
    return t;
  }();
  return &k;
}

}  // namespace ember
