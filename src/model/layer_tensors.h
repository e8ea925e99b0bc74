// One transformer block's tensors, in file order, with GPT-2's names: the one list behind the file's
// required tensors (core/config.cpp), the loader's LayerWeights (model/model_impl.h), the trainer's
// parameter layout (train/trainer.cpp) and the names linear-layer taps and reports use. A linear
// layer is named by its weight without ".weight" ("attn.c_attn"), a tensor as "h.<layer>.<suffix>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/block.h"

namespace ember {

enum class LayerTensor {
  kLn1Weight, kLn1Bias, kAttnQkvWeight, kAttnQkvBias, kAttnProjWeight, kAttnProjBias,
  kLn2Weight, kLn2Bias, kMlpFcWeight, kMlpFcBias, kMlpProjWeight, kMlpProjBias,
};
constexpr size_t kLayerTensors = 12;
constexpr BlockLinear kBlockLinears[] = {BlockLinear::kQkv, BlockLinear::kAttnProj, BlockLinear::kMlpFc,
                                         BlockLinear::kMlpProj};

inline const char* layer_tensor_suffix(LayerTensor t) {
  static const char* const kNames[kLayerTensors] = {
      "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
      "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",    "mlp.c_fc.bias",    "mlp.c_proj.weight",  "mlp.c_proj.bias"};
  return kNames[static_cast<int>(t)];
}
inline std::string layer_tensor_name(size_t layer, LayerTensor t) {
  return "h." + std::to_string(layer) + "." + layer_tensor_suffix(t);
}
// Shapes for n_embd C and feed-forward width F; linear weights are [out, in].
inline std::vector<uint64_t> layer_tensor_shape(LayerTensor t, uint64_t C, uint64_t F) {
  switch (t) {
    case LayerTensor::kAttnQkvWeight: return {3 * C, C};
    case LayerTensor::kAttnQkvBias: return {3 * C};
    case LayerTensor::kAttnProjWeight: return {C, C};
    case LayerTensor::kMlpFcWeight: return {F, C};
    case LayerTensor::kMlpFcBias: return {F};
    case LayerTensor::kMlpProjWeight: return {C, F};
    default: return {C};  // layer norms, the projections' biases
  }
}

// A linear layer's weight (its bias follows it), its name, and its input and output widths.
inline LayerTensor linear_weight(BlockLinear l) {
  static const LayerTensor kWeights[] = {LayerTensor::kAttnQkvWeight, LayerTensor::kAttnProjWeight,
                                         LayerTensor::kMlpFcWeight, LayerTensor::kMlpProjWeight};
  return kWeights[static_cast<int>(l)];
}
inline LayerTensor linear_bias(BlockLinear l) { return static_cast<LayerTensor>(static_cast<int>(linear_weight(l)) + 1); }
inline const char* block_linear_name(BlockLinear l) {
  static const char* const kNames[] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
  return kNames[static_cast<int>(l)];
}
inline size_t linear_in(BlockLinear l, size_t C, size_t F) { return l == BlockLinear::kMlpProj ? F : C; }
inline size_t linear_out(BlockLinear l, size_t C, size_t F) {
  return l == BlockLinear::kQkv ? 3 * C : l == BlockLinear::kMlpFc ? F : C;
}
// A layer norm's gain (its bias follows it).
inline LayerTensor norm_weight(BlockNorm n) {
  return n == BlockNorm::kLn1 ? LayerTensor::kLn1Weight : LayerTensor::kLn2Weight;
}
inline LayerTensor norm_bias(BlockNorm n) { return static_cast<LayerTensor>(static_cast<int>(norm_weight(n)) + 1); }

}  // namespace ember
