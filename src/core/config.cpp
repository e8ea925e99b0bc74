#include "ember/config.h"

#include <cmath>

#include "model/layer_tensors.h"

namespace ember {

const char* norm_placement_name(NormPlacement n) {
  return n == NormPlacement::kPostLN ? "post-LN (GPT-1)" : "pre-LN + final LN (GPT-2)";
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kGeluTanh: return "gelu (tanh)";
    case Activation::kGeluErf: return "gelu (erf)";
    case Activation::kRelu: return "relu";
  }
  return "?";
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kI8: return "i8";
    case DType::kI4: return "i4";
  }
  return "?";
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kI8: return 1;
    case DType::kI4: return 0;
  }
  return 0;
}

Status ModelConfig::validate() const {
  // Limits keep every size product far from overflow and reject absurd headers early.
  constexpr uint32_t kMaxDim = 1u << 20;
  const struct { const char* name; uint32_t v; } dims[] = {
      {"n_vocab", n_vocab}, {"n_ctx", n_ctx}, {"n_embd", n_embd},
      {"n_head", n_head},   {"n_layer", n_layer}, {"n_ff", n_ff}};
  for (const auto& d : dims) {
    if (d.v == 0) return invalid_file(std::string("config.") + d.name + " is 0");
    if (d.v > kMaxDim) return invalid_file(std::string("config.") + d.name + " = " + std::to_string(d.v) + " is too large");
  }
  if (n_layer > 1024) return invalid_file("config.n_layer = " + std::to_string(n_layer) + " is too large");
  if (n_embd % n_head != 0)
    return invalid_file("config.n_embd (" + std::to_string(n_embd) + ") is not a multiple of n_head (" +
                        std::to_string(n_head) + ")");
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) return invalid_file("config.norm_eps must be a positive number");
  if (static_cast<uint8_t>(norm) > 1) return invalid_file("config.norm is not a known norm placement");
  if (static_cast<uint8_t>(activation) > 2) return invalid_file("config.activation is not a known activation");
  if (n_classes > 65536) return invalid_file("config.n_classes = " + std::to_string(n_classes) + " is too large");
  return Status::Ok();
}

std::vector<TensorRequirement> required_tensors(const ModelConfig& c) {
  const uint64_t V = c.n_vocab, T = c.n_ctx, C = c.n_embd, F = c.n_ff;
  std::vector<TensorRequirement> r;
  r.push_back({"wte", {V, C}});
  r.push_back({"wpe", {T, C}});
  for (uint32_t i = 0; i < c.n_layer; ++i) {
    for (size_t t = 0; t < kLayerTensors; ++t)
      r.push_back({layer_tensor_name(i, static_cast<LayerTensor>(t)), layer_tensor_shape(static_cast<LayerTensor>(t), C, F)});
  }
  if (c.norm == NormPlacement::kPreLN) {
    r.push_back({"ln_f.weight", {C}});
    r.push_back({"ln_f.bias", {C}});
  }
  if (!c.tied_lm_head) r.push_back({"lm_head.weight", {V, C}});
  if (c.n_classes > 0) {
    r.push_back({"cls.weight", {c.n_classes, C}});
    r.push_back({"cls.bias", {c.n_classes}});
  }
  return r;
}

}  // namespace ember
