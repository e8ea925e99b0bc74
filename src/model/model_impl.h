// The model's internals, shared with the session: weights as f32 pointers (views into the mapping
// when stored f32, else converted once at load) and the XNNPACK operators created at load.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "ember/model.h"
#include "format/ember_file.h"
#include "kernels/xnn/linear_xnn.h"

namespace ember {

struct LayerWeights {
  const float* ln_1_g;  // (n_embd)
  const float* ln_1_b;
  const float* ln_2_g;
  const float* ln_2_b;
  LinearF32 attn_qkv;   // (3 * n_embd, n_embd)
  LinearF32 attn_proj;  // (n_embd, n_embd)
  LinearF32 mlp_fc;     // (n_ff, n_embd)
  LinearF32 mlp_proj;   // (n_embd, n_ff)
};

struct Model::Impl {
  std::unique_ptr<EmberFile> file;
  ModelConfig config;
  Tokenizer tokenizer;
  const float* wte = nullptr;  // (n_vocab, n_embd)
  const float* wpe = nullptr;  // (n_ctx, n_embd)
  const float* ln_f_g = nullptr;  // pre-LN only
  const float* ln_f_b = nullptr;
  std::vector<LayerWeights> layers;
  LinearF32 lm_head;  // (n_vocab, n_embd), no bias
  LinearF32 cls;      // (n_classes, n_embd), when n_classes > 0
  std::vector<std::vector<float>> owned;  // f32 copies of tensors not stored as f32
  // XNNPACK operators hold bound pointers between setup and run: one forward at a time.
  mutable std::mutex compute_mutex;

  // f32 view of a tensor (converting F16 / I8 once into `owned`).
  Result<const float*> f32(const std::string& name);
};

}  // namespace ember
