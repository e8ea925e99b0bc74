// ember/config.h - the hyper-parameters of a GPT model, shared by the runtime and the host tools.
//
// Sizes use one vocabulary everywhere: n_vocab, n_ctx, n_embd, n_head, n_layer, n_ff.
// Tensor names are canonical (GPT-2 style, weights stored [out, in]); see tensor_names below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"

namespace ember {

// Where LayerNorm sits. kPostLN: GPT-1, x = LN(x + sublayer(x)), no final LN.
// kPreLN: GPT-2, x = x + sublayer(LN(x)), plus a final LN (ln_f) before the heads.
enum class NormPlacement : uint8_t { kPostLN = 0, kPreLN = 1 };
enum class Activation : uint8_t { kGeluTanh = 0, kGeluErf = 1, kRelu = 2 };
enum class DType : uint8_t { kF32 = 0, kF16 = 1, kI8 = 2, kI4 = 3 };

EMBER_API const char* norm_placement_name(NormPlacement n);
EMBER_API const char* activation_name(Activation a);
EMBER_API const char* dtype_name(DType d);
// Bytes per element; 0 for kI4, whose size depends on its shape and group (i4_tensor_bytes).
EMBER_API size_t dtype_size(DType d);

// Element conversions: F16 is IEEE half (exact, subnormals included; f32_to_f16 rounds to nearest
// even), BF16 is bfloat16.
EMBER_API float f16_to_f32(uint16_t h);
EMBER_API uint16_t f32_to_f16(float f);
EMBER_API float bf16_to_f32(uint16_t h);
// Decodes n stored elements (little-endian bytes of `dtype`) to f32; kI8 multiplies each by the scale of
// its row: `scales` holds one per row of `row_len` elements (unused for kF32 and kF16). The one place a
// stored tensor becomes floats (runtime, trainer, quantizer, converter).
// kI4 tensors are not element-wise: decode them with decode_i4_f32 (decode_f32 writes zeros for kI4).
EMBER_API void decode_f32(DType dtype, const uint8_t* data, size_t n, const float* scales, size_t row_len, float* out);
// int4 tensors (kI4): an [out, in] matrix of values in [-8, 7] with a half-float scale per row and group
// of `group` input channels (a multiple of 16 dividing in), packed for the runtime's kernels
// (docs/format.md). i4_tensor_bytes: its size in bytes; decode_i4_f32: its out * in values as floats.
EMBER_API uint64_t i4_tensor_bytes(uint64_t out, uint64_t in, uint64_t group);
EMBER_API void decode_i4_f32(const uint8_t* data, size_t out, size_t in, size_t group, float* dst);

struct EMBER_API ModelConfig {
  uint32_t n_vocab = 0;
  uint32_t n_ctx = 0;    // maximum sequence length (learned positions)
  uint32_t n_embd = 0;
  uint32_t n_head = 0;
  uint32_t n_layer = 0;
  uint32_t n_ff = 0;     // hidden width of the position-wise feed-forward layer (usually 4 * n_embd)
  float norm_eps = 1e-5f;
  NormPlacement norm = NormPlacement::kPreLN;
  Activation activation = Activation::kGeluTanh;
  bool tied_lm_head = true;  // LM head reuses the token embedding (wte)
  uint32_t n_classes = 0;    // > 0: a task classifier head (cls.weight, cls.bias) on the last token

  // Checks ranges and divisibility (n_embd % n_head == 0, sizes > 0 and sane). Names the bad field.
  Status validate() const;
};

// The tensors a config requires, in file order, with their shapes. Weights of linear layers are
// [out, in]; per-channel int8 scales run along dimension 0.
struct TensorRequirement {
  std::string name;
  std::vector<uint64_t> shape;
};
EMBER_API std::vector<TensorRequirement> required_tensors(const ModelConfig& c);

}  // namespace ember
