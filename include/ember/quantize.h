// ember/quantize.h - host side: float model -> int8 or int4 model.
//
//   ember::ModelSpec f = ember::import_model("gpt2/").value();
//   ember::Status st = ember::quantize_model(f, {});   // in place: int8 weights, per output channel
//   ember::write_model_file(f, "gpt2.int8.ember");
//
// int8 (the default): weights of every linear layer and the token embedding (which is also the tied LM
// head) become int8, symmetric, one scale per output channel (row of the [out, in] weight):
// scale = max|row| / 127, q = round-half-even(w / scale), f = scale * q.
// int4 (opts.type = DType::kI4): the linear layers' weights become 4-bit values q in [-8, 7] with a
// half-float scale per row and group of opts.group input channels (quantize_rows_q4); the embedding
// takes opts.embedding_type (kI8 or kI4). Layer norms, biases and position embeddings stay f32.
// Activations are quantized by the runtime per token (dynamic), so no activation scale is stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
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
  DType type = DType::kI8;            // the linear layers' weights: kI8 or kI4
  DType embedding_type = DType::kI8;  // wte (and lm_head when untied), if `embeddings`: kI8 or kI4
  uint32_t group = 32;                // kI4: input channels per scale, a multiple of 16 dividing the rows
};

// Symmetric per-row int8: scales[r] = max|w[r, :]| / 127 (0 for an all-zero row).
EMBER_API void quantize_rows_symmetric(const float* w, size_t rows, size_t cols, int8_t* q, float* scales);

// Symmetric 4-bit in groups: for row r and group g (cols / group of them), a half-float scale s and
// q = clamp(round-half-even(w / s), -8, 7), where s = max|w| / m is the candidate m in [7, 9] (steps of
// 1/8; above 8 the largest values clip) whose half-float rounding gives the least squared error
// sum (w - s q)^2 over the group (a zero group: s = 0, q = 0). q is (rows, cols) in [-8, 7]; scales
// (rows, cols / group) are IEEE half bits. cols % group == 0.
EMBER_API void quantize_rows_q4(const float* w, size_t rows, size_t cols, size_t group, int8_t* q, uint16_t* scales);

// Turns the chosen tensors of `spec` into opts' types, in place: f32 and f16 tensors are quantized; a
// tensor already of its target type stays; one of the other quantized type is dequantized and quantized
// again. Fails, naming the tensor, when int4's group does not divide a row or a weight is not finite.
EMBER_API Status quantize_model(ModelSpec& spec, const QuantizeOptions& opts);

// quantize_model with GPTQ for its int4 tensors (Frantar et al. 2022): the layer inputs of `tokens`
// (windows of ctx, through the float model of `spec`) give each int4 layer's Hessian X^T X; its weights
// are then quantized one input channel at a time, each channel's rounding error spread over the channels
// not yet quantized so that the layer's output moves least. Costs a float forward over the tokens plus
// O(in^3 + out in^2) per layer; the int8 and float tensors are as quantize_model makes them.
// `progress`, when set, is called on the calling thread once the Hessians are collected (done 0, tensor
// "") and after each layer (done 1..total, the weight tensor's name).
using GptqProgressCallback = std::function<void(size_t done, size_t total, const std::string& tensor)>;
EMBER_API Status quantize_model_gptq(ModelSpec& spec, const QuantizeOptions& opts, const std::vector<int32_t>& tokens,
                                     size_t ctx, uint32_t threads, const GptqProgressCallback& progress = nullptr);
// GPTQ of one weight matrix w (out x in) with the input Hessian `hessian` (in x in, symmetric): values
// q in [-8, 7] (out x in) and half-float scales per group (out x in / group).
EMBER_API Status gptq_quantize_q4(const float* w, size_t out, size_t in, size_t group, const double* hessian, int8_t* q,
                                  uint16_t* scales, uint32_t threads);

// True for the tensors quantize_model quantizes.
EMBER_API bool is_quantized_tensor(const std::string& name, const QuantizeOptions& opts);

// Measuring what quantization costs: per-layer output error and float vs quantized perplexity on a sample.
struct LayerError {
  std::string name;  // "h.3.mlp.fc", "lm_head"
  double rel_err;    // ||y_int8 - y_f32|| / ||y_f32|| over the sample, the layer's input taken from f32
};

struct QuantReport {
  std::vector<LayerError> layers;  // int8 layers in forward order
  PerplexityResult f32, quantized;
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
