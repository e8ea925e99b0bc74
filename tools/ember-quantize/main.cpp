// ember-quantize: import a trained checkpoint and write an .ember model.
#include <cstdio>
#include <cstring>
#include <string>

#include "../common/cli.h"
#include "ember/convert.h"

using namespace ember_cli;

namespace {

// Re-encodes a tensor as f32 or f16 (f16 and int8 inputs, e.g. from an .ember file, are expanded).
void to_type(ember::TensorData& t, ember::DType want) {
  if (t.dtype == want) return;
  const size_t n = t.data.size() / ember::dtype_size(t.dtype);
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) {
    if (t.dtype == ember::DType::kF32) {
      std::memcpy(&f[i], &t.data[4 * i], 4);
    } else if (t.dtype == ember::DType::kF16) {
      f[i] = ember::f16_to_f32(static_cast<uint16_t>(t.data[2 * i] | (t.data[2 * i + 1] << 8)));
    } else {
      f[i] = t.scales[i / (n / t.shape[0])] * static_cast<int8_t>(t.data[i]);
    }
  }
  t.scales.clear();
  t.dtype = want;
  t.data.resize(n * ember::dtype_size(want));
  for (size_t i = 0; i < n; ++i) {
    if (want == ember::DType::kF32) {
      std::memcpy(&t.data[4 * i], &f[i], 4);
    } else {
      const uint16_t h = ember::f32_to_f16(f[i]);
      t.data[2 * i] = static_cast<uint8_t>(h & 0xff);
      t.data[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args args("ember-quantize", "ember-quantize INPUT OUTPUT [--type f32|f16] [--meta KEY=VALUE ...]",
            "Converts a trained GPT checkpoint into an .ember model file. INPUT is a checkpoint directory\n"
            "(model.safetensors + config.json, with vocab.json + merges.txt, encoder.json + vocab.bpe or\n"
            "vocab_chars.json for the tokenizer), a .safetensors file (config and tokenizer files beside\n"
            "it), or an .ember file. Hugging Face GPT-2, Hugging Face openai-gpt (GPT-1) and nanoGPT\n"
            "namings are detected. The output is written to a temporary file and renamed, so a failure\n"
            "never leaves a partial OUTPUT.");
  args.option("type", "", "TYPE", "tensor type of the output: f32 or f16", "f32");
  args.option("meta", "", "KEY=VALUE", "add a metadata entry (repeatable), e.g. license=MIT");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (args.positional().size() != 2) args.usage_error("give INPUT and OUTPUT");
  const std::string in = args.positional()[0], out = args.positional()[1];
  const std::string type = args.str("type");
  if (type != "f32" && type != "f16")
    args.usage_error("--type " + type + " is not supported yet (f32 or f16; int8 comes with the int8 runtime)");

  const double t0 = now_seconds();
  std::fprintf(stderr, "%s: importing %s\n", P.c_str(), in.c_str());
  ember::ModelSpec spec = check(P, ember::import_model(in));
  const ember::ModelConfig& c = spec.config;
  std::fprintf(stderr, "%s: %s: n_layer %u, n_head %u, n_embd %u, n_ctx %u, n_vocab %u, %s, %s, tokenizer %s\n",
               P.c_str(), spec.metadata.count("naming") ? spec.metadata["naming"].c_str() : "model", c.n_layer, c.n_head,
               c.n_embd, c.n_ctx, c.n_vocab, ember::norm_placement_name(c.norm), ember::activation_name(c.activation),
               ember::tokenizer_kind_name(spec.tokenizer.kind()));
  for (ember::TensorData& t : spec.tensors) to_type(t, type == "f16" ? ember::DType::kF16 : ember::DType::kF32);
  spec.metadata["type"] = type;
  spec.metadata["converter"] = "ember-quantize";
  for (const std::string& kv : args.all("meta")) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) args.usage_error("--meta wants KEY=VALUE (got '" + kv + "')");
    spec.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  check(P, ember::write_model_file(spec, out));
  std::fprintf(stderr, "%s: wrote %s in %.1f s\n", P.c_str(), out.c_str(), now_seconds() - t0);
  return 0;
}
