// The model's internals, shared with the session: weights as f32 pointers (views into the mapping
// when stored f32, else converted once at load) and the XNNPACK operators created at load.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "ember/model.h"
#include "core/threadpool.h"
#include "core/visibility.h"
#include "format/ember_file.h"
#include "kernels/kernels.h"
#include "kernels/xnn/linear_xnn.h"
#include "model/block.h"

namespace ember {

// The caller's scratch for quantized linear layers (the session owns it): the activations quantized per
// token, xq (batch * in bytes) and xs (batch floats), and for int4 layers their group sums xg
// (batch * in / 16 int32: the smallest group is 16).
struct QuantScratch {
  int8_t* xq;
  float* xs;
  int32_t* xg;
};

// A linear layer y = x W^T + b, W (out, in). Float weights run on XNNPACK (packed at load); int8 and
// int4 weights run on ember's gemm_q8 / gemm_q4 straight from the mapped file, with the activations
// quantized per token into the caller's scratch.
struct Linear {
  LinearF32 f32;
  const int8_t* w_q8 = nullptr;  // set: int8 path
  const float* w_scales = nullptr;
  const uint8_t* w_q4 = nullptr;  // set: int4 path (format/q4.h: nibbles, then half-float scales)
  const uint16_t* q4_scales = nullptr;
  size_t group = 0;  // int4: input channels per scale
  const float* bias = nullptr;
  size_t in = 0, out = 0;

  bool is_quantized() const { return w_q8 != nullptr || w_q4 != nullptr; }
  Status run(size_t batch, const float* x, float* y, ThreadPool* pool, const Kernels& K, const QuantScratch& s) const;
};

// One block's weights, indexed by the names of model/layer_tensors.h.
struct LayerWeights {
  const float* norm_g[2];  // (n_embd), by BlockNorm
  const float* norm_b[2];
  Linear linear[4];  // by BlockLinear: attn.c_attn (3 n_embd, n_embd), attn.c_proj, mlp.c_fc (n_ff, n_embd), mlp.c_proj
  const Linear& lin(BlockLinear l) const { return linear[static_cast<int>(l)]; }
};

struct EMBER_HIDDEN Model::Impl {
  std::unique_ptr<EmberFile> file;
  ModelConfig config;
  Tokenizer tokenizer;
  const float* wte = nullptr;     // (n_vocab, n_embd) when stored float
  const int8_t* wte_q8 = nullptr;  // (n_vocab, n_embd) when stored int8, rows scaled by wte_scales
  const float* wte_scales = nullptr;
  const uint8_t* wte_q4 = nullptr;  // (n_vocab, n_embd) when stored int4 (format/q4.h), groups of wte_group
  size_t wte_group = 0;
  const float* wpe = nullptr;  // (n_ctx, n_embd)
  const float* ln_f_g = nullptr;  // pre-LN only
  const float* ln_f_b = nullptr;
  std::vector<LayerWeights> layers;
  Linear lm_head;  // (n_vocab, n_embd), no bias
  Linear cls;      // (n_classes, n_embd), when n_classes > 0
  size_t max_linear_in = 0;  // widest int8 / int4 linear input: the session's activation scratch size
  std::map<std::string, std::vector<float>> owned;  // f32 copies of tensors not stored as f32, by name
  // XNNPACK operators hold bound pointers between setup and run: one forward at a time on a model with
  // float linear layers. int8 layers keep no state (ember's kernels, session-owned scratch), so on an
  // all-int8 model sessions compute concurrently.
  mutable std::mutex compute_mutex;
  bool has_xnn_ops = false;  // set by linear() when it creates an XNNPACK operator
  // fingerprint(): computed once. Float weights packed by XNNPACK have their mapped pages released
  // (linear() below); hashing reads them back in, so their ranges are kept to release them again.
  mutable std::once_flag fingerprint_once;
  mutable uint64_t fingerprint = 0;
  std::vector<std::pair<void*, size_t>> released;
  std::unique_lock<std::mutex> compute_lock() const {
    return has_xnn_ops ? std::unique_lock<std::mutex>(compute_mutex) : std::unique_lock<std::mutex>();
  }

  // The semantic half of Model::load: every tensor the config needs, then the compute. `file` is
  // verified already (EmberFile::open, or EmberFile::from_buffer for fuzzing and in-memory models).
  static Result<std::shared_ptr<const Model>> load_file(std::unique_ptr<EmberFile> file);
  static Result<std::shared_ptr<const Model>> load_verified(std::unique_ptr<EmberFile> file);  // may throw bad_alloc
  // f32 view of a tensor (converting F16 / I8 once into `owned`).
  Result<const float*> f32(const std::string& name);
  // A linear layer from `weight` (and `bias`, may be empty): int8 weights stay int8 and are read in
  // place; float weights are packed by XNNPACK, after which their source (the mapped pages, or the f32
  // copy of an f16 tensor) is released, so the model holds one copy of its weights.
  Result<Linear> linear(const std::string& weight, const std::string& bias, size_t in, size_t out);
};

// The library's route to a Model's internals, which the public header keeps private (Model befriends
// this struct): the session, the quantizer's measurement, tests and fuzz targets use ModelImpl and
// model_impl(model).
struct ModelAccess {
  using Impl = Model::Impl;
  static const Impl& impl(const Model& m) { return *m.impl_; }
};
using ModelImpl = ModelAccess::Impl;
inline const ModelImpl& model_impl(const Model& m) { return ModelAccess::impl(m); }

}  // namespace ember
