// ember-quantize: import a trained checkpoint and write an .ember model.
#include <cstdio>
#include <cstring>
#include <string>

#include "../common/cli.h"
#include "ember/convert.h"

using namespace ember_cli;

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
  for (ember::TensorData& t : spec.tensors) {
    if (t.dtype == ember::DType::kF32 && type == "f16") {
      std::vector<uint8_t> half(t.data.size() / 2);
      for (size_t i = 0; i < t.data.size() / 4; ++i) {
        float f;
        std::memcpy(&f, &t.data[4 * i], 4);
        uint16_t h = ember::f32_to_f16(f);
        half[2 * i] = static_cast<uint8_t>(h & 0xff);
        half[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      t.data = std::move(half);
      t.dtype = ember::DType::kF16;
    } else if (t.dtype != ember::DType::kF32 && type == "f32") {
      fail(P, "tensor '" + t.name + "' is " + ember::dtype_name(t.dtype) + "; converting it to f32 is not supported");
    }
  }
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
