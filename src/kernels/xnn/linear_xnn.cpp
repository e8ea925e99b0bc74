#include "kernels/xnn/linear_xnn.h"

#include <xnnpack.h>

#include <limits>
#include <mutex>

namespace ember {

Status xnn_init_once() {
  static xnn_status st = xnn_initialize(nullptr);
  if (st != xnn_status_success)
    return internal_error("XNNPACK initialization failed (status " + std::to_string(st) + "); unsupported CPU?");
  return Status::Ok();
}

void LinearF32::Deleter::operator()(xnn_operator* op) const { xnn_delete_operator(op); }

Result<LinearF32> LinearF32::create(const float* w, const float* b, size_t in, size_t out, const std::string& name) {
  EMBER_RETURN_IF_ERROR(xnn_init_once());
  xnn_operator_t op = nullptr;
  const float inf = std::numeric_limits<float>::infinity();
  xnn_status st = xnn_create_fully_connected_nc_f32(in, out, in, out, w, b, -inf, inf,
                                                    XNN_FLAG_YIELD_WORKERS, &op);  // see ThreadPool::xnnpack_pool
  if (st != xnn_status_success)
    return internal_error(name + ": XNNPACK fully-connected create failed (status " + std::to_string(st) + ")");
  LinearF32 l;
  l.op_.reset(op);
  l.in_ = in;
  l.out_ = out;
  l.name_ = name;
  return l;
}

Status LinearF32::run(size_t batch, const float* x, float* y, pthreadpool_t pool) const {
  xnn_status st = xnn_setup_fully_connected_nc_f32(op_.get(), batch, x, y, pool);
  if (st == xnn_status_success) st = xnn_run_operator(op_.get(), pool);
  if (st != xnn_status_success)
    return internal_error(name_ + ": XNNPACK fully-connected run failed (status " + std::to_string(st) + ")");
  return Status::Ok();
}

void linear_f32_ref(const float* x, const float* w, const float* b, float* y, size_t batch, size_t in, size_t out) {
  for (size_t t = 0; t < batch; ++t)
    for (size_t o = 0; o < out; ++o) {
      double s = b ? b[o] : 0.0;
      for (size_t i = 0; i < in; ++i) s += static_cast<double>(x[t * in + i]) * w[o * in + i];
      y[t * out + o] = static_cast<float>(s);
    }
}

}  // namespace ember
