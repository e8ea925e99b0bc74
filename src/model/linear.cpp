// Linear::run in its own object: libember_host.so (the quantizer's measurement) links it from the
// library's objects without taking the rest of the model loader along (src/meson.build).
#include "kernels/gemm_q4.h"
#include "kernels/gemm_q8.h"
#include "model/model_impl.h"

namespace ember {

Status Linear::run(size_t batch, const float* x, float* y, ThreadPool* pool, const Kernels& K, const QuantScratch& s) const {
  if (!is_quantized()) return f32.run(batch, x, y, pool ? pool->xnnpack_pool() : nullptr);
  K.quantize_rows_q8(x, batch, in, s.xq, s.xs);
  if (w_q4)
    gemm_q4_parallel(pool, K, GemmQ4Args{s.xq, s.xs, nullptr, w_q4, q4_scales, bias, y, batch, in, out, group}, s.xg);
  else
    gemm_q8_parallel(pool, K, GemmQ8Args{s.xq, s.xs, w_q8, w_scales, bias, y, batch, in, out});
  return Status::Ok();
}

}  // namespace ember
