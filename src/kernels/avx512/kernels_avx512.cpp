// The "avx512" table: the "avx2" table with AVX-512 versions of the int8 GEMM and the activation
// quantizer (gemm_q8_avx512.cpp) and of the f32 cache's attention kernels (below), each the same bits
// as the entry it replaces. Entries without a measured gain stay the avx2 table's.
// GCC 12's AVX-512 headers draw false -Wuninitialized warnings after inlining (their _mm*_undefined_*
// initialise a variable with itself; GCC bug 105593), located in the header: silenced there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#include <math.h>
#include <string.h>

#include "kernels/avx2/kernels_avx2.h"
#include "kernels/avx512/kernels_avx512.h"

namespace ember {

const Kernels* avx512_kernels() {
  // A function-local static: built at the first call, after select_x86.cpp's CPU check.
  static const Kernels k = [] {
    Kernels t = avx2_kernels();
    t.name = "avx512";
    t.quantize_rows_q8 = quantize_rows_q8_avx512;
    t.gemm_q8 = gemm_q8_avx512;
    t.gemm_q8_tile = gemm_q8_tile_avx512;
    return t;
  }();
  return &k;
}

}  // namespace ember
