// The "avxvnni" table's int4 GEMM (gemm_q4_avx2_impl.h): vpdpbusd of the unsigned nibbles by the signed
// activations straight into int32. Compiled with -mavxvnni: call only after select_x86.cpp's CPUID check.
#include "kernels/avx2/gemm_q4_avx2_impl.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

struct Dpbusd {
  static __m256i mul(__m256i acc, __m256i u, __m256i x) { return _mm256_dpbusd_avx_epi32(acc, u, x); }
  static __m256i widen(__m256i acc) { return acc; }
};

}  // namespace

void gemm_q4_tile_avxvnni(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q4_tile_impl<Dpbusd>(a, t0, t1, o0, o1);
}

}  // namespace ember
