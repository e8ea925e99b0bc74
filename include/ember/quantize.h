// ember/quantize.h - host side: float model -> int8 model.
//
//   ember::ModelSpec f = ember::import_model("gpt2/").value();
//   ember::Status st = ember::quantize_model(f, {});   // in place: int8 weights, per output channel
//   ember::write_model_file(f, "gpt2.int8.ember");
//
// Weights of every linear layer and the token embedding (which is also the tied LM head) become int8,
// symmetric, one scale per output channel (row of the [out, in] weight): scale = max|row| / 127,
// q = round-half-even(w / scale), f = scale * q. Layer norms, biases and position embeddings stay f32.
// Activations are quantized by the runtime per token (dynamic), so no activation scale is stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/convert.h"
#include "ember/export.h"
#include "ember/model.h"
#include "ember/session.h"

namespace ember {

struct QuantizeOptions {
  bool embeddings = true;  // also wte (and lm_head when untied); false keeps them f32
};

// Symmetric per-row int8: scales[r] = max|w[r, :]| / 127 (0 for an all-zero row).
EMBER_API void quantize_rows_symmetric(const float* w, size_t rows, size_t cols, int8_t* q, float* scales);

// Turns the chosen tensors of `spec` (f32 or f16) into int8, in place. Tensors already int8 stay.
EMBER_API Status quantize_model(ModelSpec& spec, const QuantizeOptions& opts);

// True for the tensors quantize_model turns into int8.
EMBER_API bool is_quantized_tensor(const std::string& name, const QuantizeOptions& opts);

// Measuring what int8 costs: per-layer output error and float vs int8 perplexity on a sample.
struct LayerError {
  std::string name;  // "h.3.mlp.fc", "lm_head"
  double rel_err;    // ||y_int8 - y_f32|| / ||y_f32|| over the sample, the layer's input taken from f32
};

struct QuantReport {
  std::vector<LayerError> layers;  // int8 layers in forward order
  PerplexityResult f32, int8;
};

// Tokens to calibrate on when the user gives none: drawn from the float model itself (temperature 1,
// no truncation, seeded), in windows of `ctx` tokens, each starting at the end-of-text token (or 0).
EMBER_API Result<std::vector<int32_t>> sample_tokens(std::shared_ptr<const Model> model, size_t n_tokens, size_t ctx,
                                                     uint64_t seed, uint32_t threads);

// Runs `tokens` through the float model, recomputing each of its linear layers with the int8 model's
// weights and per-token activation quantization (isolated error), then both perplexities (windows of ctx).
EMBER_API Result<QuantReport> measure_quantization(std::shared_ptr<const Model> f32_model, std::shared_ptr<const Model> int8_model,
                                                   const std::vector<int32_t>& tokens, size_t ctx, uint32_t threads);


}  // namespace ember
