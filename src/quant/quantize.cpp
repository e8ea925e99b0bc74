#include "ember/quantize.h"

#include <cmath>
#include <cstring>

namespace ember {

void quantize_rows_symmetric(const float* w, size_t rows, size_t cols, int8_t* q, float* scales) {
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    float amax = 0.0f;
    for (size_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(row[c]));
    const float scale = amax / 127.0f;
    scales[r] = scale;
    const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    for (size_t c = 0; c < cols; ++c) {
      float v = std::nearbyint(row[c] * inv);  // round half to even (default rounding mode)
      v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
      q[r * cols + c] = v == v ? static_cast<int8_t>(v) : 0;  // NaN: no UB cast (import refuses such weights)
    }
  }
}

bool is_quantized_tensor(const std::string& name, const QuantizeOptions& opts) {
  if (name == "wte" || name == "lm_head.weight") return opts.embeddings;
  auto ends_with = [&](const char* s) {
    const size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  return name.rfind("h.", 0) == 0 && (ends_with(".attn.c_attn.weight") || ends_with(".attn.c_proj.weight") ||
                                      ends_with(".mlp.c_fc.weight") || ends_with(".mlp.c_proj.weight"));
}

Status quantize_model(ModelSpec& spec, const QuantizeOptions& opts) {
  EMBER_RETURN_IF_ERROR(spec.validate());
  for (TensorData& t : spec.tensors) {
    if (!is_quantized_tensor(t.name, opts) || t.dtype == DType::kI8) continue;
    if (t.shape.size() != 2) return invalid_argument("quantize: tensor '" + t.name + "' is not a matrix");
    const size_t rows = t.shape[0], cols = t.shape[1];
    std::vector<float> f(rows * cols);
    decode_f32(t.dtype, t.data.data(), f.size(), nullptr, cols, f.data());
    for (float v : f)
      if (!std::isfinite(v)) return invalid_argument("quantize: tensor '" + t.name + "' holds a non-finite value");
    t.dtype = DType::kI8;
    t.data.assign(rows * cols, 0);
    t.scales.resize(rows);
    quantize_rows_symmetric(f.data(), rows, cols, reinterpret_cast<int8_t*>(t.data.data()), t.scales.data());
  }
  return Status::Ok();
}

}  // namespace ember
