// The "avx2" table's int4 GEMM (gemm_q4_avx2_impl.h): vpmaddubsw of the unsigned nibbles by the signed
// activations, summed in int16 over 32 input channels, widened by vpmaddwd.
#include "kernels/avx2/gemm_q4_avx2_impl.h"
#include "kernels/avx2/kernels_avx2.h"

namespace ember {
namespace {

struct Maddubs {
  static __m256i mul(__m256i acc, __m256i u, __m256i x) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, x)); }
  static __m256i widen(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
};

}  // namespace

void gemm_q4_tile_avx2(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1) {
  gemm_q4_tile_impl<Maddubs>(a, t0, t1, o0, o1);
}

}  // namespace ember
