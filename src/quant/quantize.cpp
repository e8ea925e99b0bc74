#include "ember/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "format/q4.h"
#include "quant/q4_quant.h"

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

uint16_t q4_group_scale(const float* x, size_t n, int8_t* q) {
  float amax = 0.0f;
  for (size_t k = 0; k < n; ++k) amax = std::max(amax, std::fabs(x[k]));
  uint16_t best_h = 0;
  double best_err = -1.0;
  for (int step = 0; amax > 0.0f && step <= 16; ++step) {  // m = 7, 7.125, ..., 9
    const uint16_t h = f32_to_f16(amax / (7.0f + 0.125f * static_cast<float>(step)));
    const float s = f16_to_f32(h);
    if (!(s > 0.0f) || !std::isfinite(s)) continue;
    double err = 0.0;
    for (size_t k = 0; k < n; ++k) {
      const double d = static_cast<double>(x[k]) - static_cast<double>(s) * q4_round(x[k], 1.0f / s);
      err += d * d;
    }
    if (best_err < 0.0 || err < best_err) {
      best_err = err;
      best_h = h;
    }
  }
  const float s = f16_to_f32(best_h);
  for (size_t k = 0; k < n; ++k) q[k] = s > 0.0f ? q4_round(x[k], 1.0f / s) : int8_t{0};
  return best_h;
}

void quantize_rows_q4(const float* w, size_t rows, size_t cols, size_t group, int8_t* q, uint16_t* scales) {
  const size_t groups = cols / group;
  for (size_t r = 0; r < rows; ++r)
    for (size_t g = 0; g < groups; ++g)
      scales[r * groups + g] = q4_group_scale(w + r * cols + g * group, group, q + r * cols + g * group);
}

Status quantize_model(ModelSpec& spec, const QuantizeOptions& opts) {
  EMBER_RETURN_IF_ERROR(spec.validate());
  for (DType d : {opts.type, opts.embedding_type})
    if (d != DType::kI8 && d != DType::kI4)
      return invalid_argument(std::string("quantize: type ") + dtype_name(d) + " is not a quantized type (i8 or i4)");
  if (opts.type == DType::kI4 || (opts.embeddings && opts.embedding_type == DType::kI4))
    if (opts.group == 0 || opts.group % 16 != 0)
      return invalid_argument("quantize: int4 group size " + std::to_string(opts.group) + " is not a positive multiple of 16");
  for (TensorData& t : spec.tensors) {
    if (!is_quantized_tensor(t.name, opts)) continue;
    const bool embedding = t.name == "wte" || t.name == "lm_head.weight";
    const DType want = embedding ? opts.embedding_type : opts.type;
    if (t.dtype == want && (want != DType::kI4 || t.group == opts.group)) continue;
    if (t.shape.size() != 2) return invalid_argument("quantize: tensor '" + t.name + "' is not a matrix");
    const size_t rows = t.shape[0], cols = t.shape[1];
    if (want == DType::kI4 && cols % opts.group != 0)
      return invalid_argument("quantize: tensor '" + t.name + "': int4 group size " + std::to_string(opts.group) +
                              " does not divide its rows of " + std::to_string(cols) + " (choose a group that does, or int8)");
    const std::vector<float> f = tensor_values(t);
    float amax = 0.0f;
    for (float v : f) {
      if (!std::isfinite(v)) return invalid_argument("quantize: tensor '" + t.name + "' holds a non-finite value");
      amax = std::max(amax, std::fabs(v));
    }
    if (want == DType::kI4 && amax / 7.0f > 65504.0f)
      return invalid_argument("quantize: tensor '" + t.name + "' holds weights too large for int4's half-float scales");
    t.scales.clear();
    t.group = 0;
    t.dtype = want;
    if (want == DType::kI8) {
      t.data.assign(rows * cols, 0);
      t.scales.resize(rows);
      quantize_rows_symmetric(f.data(), rows, cols, reinterpret_cast<int8_t*>(t.data.data()), t.scales.data());
    } else {
      std::vector<int8_t> q(rows * cols);
      std::vector<uint16_t> s(rows * (cols / opts.group));
      quantize_rows_q4(f.data(), rows, cols, opts.group, q.data(), s.data());
      t.group = opts.group;
      t.data.assign(q4_bytes(rows, cols, opts.group), 0);
      q4_pack(q.data(), s.data(), rows, cols, opts.group, t.data.data());
    }
  }
  return Status::Ok();
}

}  // namespace ember
