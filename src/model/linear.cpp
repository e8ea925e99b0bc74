// Linear::run in its own object: libember_host.so (the quantizer's measurement) links it from the
// library's objects without taking the rest of the model loader along (src/meson.build).
#include "kernels/gemm_q8.h"
#include "model/model_impl.h"

namespace ember {

Status Linear::run(size_t batch, const float* x, float* y, ThreadPool* pool, const Kernels& K, int8_t* xq,
                   float* xs) const {
  if (!is_int8()) return f32.run(batch, x, y, pool ? pool->xnnpack_pool() : nullptr);
  K.quantize_rows_q8(x, batch, in, xq, xs);
  gemm_q8_parallel(pool, K, GemmQ8Args{xq, xs, w_q8, w_scales, bias, y, batch, in, out});
  return Status::Ok();
}

}  // namespace ember
