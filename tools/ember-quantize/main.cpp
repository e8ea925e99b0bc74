// ember-quantize: import a trained checkpoint and write an .ember model.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "../common/cli.h"
#include "ember/convert.h"
#include "ember/quantize.h"

using namespace ember_cli;

namespace {

// Re-encodes a tensor as f32 or f16 (f16, int8 and int4 inputs, e.g. from an .ember file, are expanded).
void to_type(ember::TensorData& t, ember::DType want) {
  if (t.dtype == want) return;
  const std::vector<float> f = ember::tensor_values(t);
  const size_t n = f.size();
  t.scales.clear();
  t.group = 0;
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
  Args args("ember-quantize", "ember-quantize INPUT OUTPUT [--type int8|int4|f32|f16] [--calib FILE] [options]",
            "Converts a trained GPT checkpoint into an .ember model file. INPUT is a checkpoint directory\n"
            "(model.safetensors + config.json, with vocab.json + merges.txt, encoder.json + vocab.bpe or\n"
            "vocab_chars.json for the tokenizer), a .safetensors file (config and tokenizer files beside\n"
            "it), or an .ember file. Hugging Face GPT-2, Hugging Face openai-gpt (GPT-1) and nanoGPT\n"
            "namings are detected.\n\n"
            "int8 (the default): the weights of every linear layer and the token embedding / tied LM head\n"
            "become int8, symmetric, one scale per output channel; the runtime quantizes activations per\n"
            "token.\n\n"
            "int4: the linear layers' weights become 4-bit, symmetric, with a half-float scale per group of\n"
            "--group input channels of each output channel, by GPTQ on the calibration tokens (--method\n"
            "gptq: each input channel's rounding error is compensated by the channels after it, as the\n"
            "layer's inputs on those tokens demand) or by rounding each group to nearest (--method rtn,\n"
            "faster, less exact). The embedding / tied LM head takes --embedding-type: int8 by default\n"
            "(small models lose several percent of perplexity with an int4 embedding), int4 for about half\n"
            "its bytes (GPT-2 small: 74 MB instead of 91 MB). Activations stay int8 per token.\n\n"
            "The quantized model is checked on calibration tokens: a table of each layer's relative output\n"
            "error, and the float vs quantized perplexity. If it is worse than --max-ppl-increase, nothing\n"
            "is written and the exit code is 1. Calibration tokens come from --calib (text; token ids when the\n"
            "name ends in .ids (whitespace-separated) or .bin (uint16)); without it, they are sampled from\n"
            "the float model itself, which needs no extra file.\n\n"
            "The output is written to a temporary file and renamed, so a failure never leaves a partial\n"
            "OUTPUT.");
  args.option("type", "", "TYPE", "tensor type of the output: int8, int4, f32 or f16", "int8");
  args.option("group", "", "N", "int4: input channels per scale (a multiple of 16 dividing n_embd and n_ff)", "32");
  args.option("embedding-type", "", "TYPE", "int4: type of the token embedding / tied LM head (int8 or int4)", "int8");
  args.option("method", "", "M", "int4: gptq (calibrated error compensation) or rtn (round to nearest)", "gptq");
  args.option("calib", "", "FILE", "calibration text (or .ids / .bin token ids)");
  args.option("calib-tokens", "", "N", "calibration tokens to use (sampled, or the first N of --calib)", "1024");
  args.option("max-ppl-increase", "", "FRAC",
              "refuse when the quantized perplexity exceeds float's by more than this (default: 0.02 for int8, 0.05 for int4)");
  args.option("threads", "t", "N", "threads for calibration", std::to_string(default_threads()));
  args.option("meta", "", "KEY=VALUE", "add a metadata entry (repeatable; replaces one ember-quantize writes), e.g. license=MIT");
  args.parse(argc, argv);
  const std::string P = args.prog();
  ember::remove_temporaries_on_signals(P.c_str());
  if (args.positional().size() != 2) args.usage_error("give INPUT and OUTPUT");
  const std::string in = args.positional()[0], out = args.positional()[1];
  const std::string type = args.str("type");
  if (type != "f32" && type != "f16" && type != "int8" && type != "int4")
    args.usage_error("--type " + type + " is not supported (int8, int4, f32 or f16)");
  ember::QuantizeOptions qopts;
  qopts.type = qopts.embedding_type = type == "int4" ? ember::DType::kI4 : ember::DType::kI8;
  if (type == "int4") {
    qopts.group = static_cast<uint32_t>(args.integer("group", 16, 1 << 20));
    if (qopts.group % 16 != 0) args.usage_error("--group " + std::to_string(qopts.group) + " is not a multiple of 16");
    const std::string et = args.str("embedding-type");
    if (et != "int4" && et != "int8") args.usage_error("--embedding-type " + et + " is not int4 or int8");
    qopts.embedding_type = et == "int4" ? ember::DType::kI4 : ember::DType::kI8;
    if (args.str("method") != "gptq" && args.str("method") != "rtn")
      args.usage_error("--method " + args.str("method") + " is not gptq or rtn");
  } else if (args.has("group") || args.has("embedding-type") || args.has("method")) {
    args.usage_error("--group, --embedding-type and --method apply to --type int4 only");
  }
  const size_t calib_n = static_cast<size_t>(args.integer("calib-tokens", 2, 1 << 24));
  const double max_increase = args.has("max-ppl-increase") ? args.number("max-ppl-increase", 0.0, 1e9) : type == "int4" ? 0.05 : 0.02;
  const uint32_t threads = static_cast<uint32_t>(args.integer("threads", 1, 1024));

  const double t0 = now_seconds();
  std::fprintf(stderr, "%s: importing %s\n", P.c_str(), in.c_str());
  ember::ModelSpec spec = check(P, ember::import_model(in));
  const ember::ModelConfig& c = spec.config;
  if (spec.metadata.count("layout")) std::fprintf(stderr, "%s: layout: %s\n", P.c_str(), spec.metadata["layout"].c_str());
  std::vector<std::string> inputs = spec.source_files;
  if (args.has("calib")) inputs.push_back(args.str("calib"));
  check_outputs(P, {out}, inputs);
  std::fprintf(stderr, "%s: %s: n_layer %u, n_head %u, n_embd %u, n_ctx %u, n_vocab %u, %s, %s, tokenizer %s\n",
               P.c_str(), spec.metadata.count("naming") ? spec.metadata["naming"].c_str() : "model", c.n_layer, c.n_head,
               c.n_embd, c.n_ctx, c.n_vocab, ember::norm_placement_name(c.norm), ember::activation_name(c.activation),
               ember::tokenizer_kind_name(spec.tokenizer.kind()));
  for (ember::TensorData& t : spec.tensors) to_type(t, type == "f16" ? ember::DType::kF16 : ember::DType::kF32);
  spec.metadata["type"] = type;
  spec.metadata["converter"] = "ember-quantize";
  // --meta entries are applied last, before the write: a user's entry replaces one ember-quantize records
  // itself (e.g. the calibration line of a model re-written only to add metadata). Checked first.
  std::map<std::string, std::string> user_meta;
  for (const std::string& kv : args.all("meta")) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) args.usage_error("--meta wants KEY=VALUE (got '" + kv + "')");
    user_meta[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto write = [&] {
    for (const auto& [k, v] : user_meta) spec.metadata[k] = v;
    check(P, ember::write_model_file(spec, out));  // atomic (temporary, fsync, rename, directory fsync)
    std::fprintf(stderr, "%s: wrote %s in %.1f s\n", P.c_str(), out.c_str(), now_seconds() - t0);
    return 0;
  };
  if (type != "int8" && type != "int4") return write();

  // int8 / int4: keep the float model at hand (in memory) to measure against, then quantize and compare.
  auto fm = check(P, ember::load_model_spec(spec, in + " (f32)"));
  const size_t ctx = std::min<size_t>(c.n_ctx, 256);
  std::vector<int32_t> calib;
  std::string calib_desc;
  if (args.has("calib")) {
    const std::string f = args.str("calib");
    const bool ids = f.size() > 4 && (f.compare(f.size() - 4, 4, ".bin") == 0 || f.compare(f.size() - 4, 4, ".ids") == 0);
    if (ids) {
      calib = check(P, read_token_file(f));
    } else {
      if (fm->tokenizer().kind() == ember::TokenizerKind::kNone)
        fail(P, "the model has no tokenizer; give calibration token ids (--calib FILE.ids or .bin)");
      auto enc = fm->tokenizer().encode(check(P, ember::read_file(f)));
      if (!enc.ok()) fail(P, f + ": " + enc.status().message());
      calib = std::move(enc).value();
    }
    for (int32_t t : calib)
      if (t < 0 || static_cast<uint32_t>(t) >= c.n_vocab) fail(P, f + ": token id " + std::to_string(t) + " is outside the vocabulary");
    if (calib.size() > calib_n) calib.resize(calib_n);
    if (calib.size() < 2) fail(P, f + ": fewer than 2 calibration tokens");
    calib_desc = std::to_string(calib.size()) + " tokens of " + f;
  } else {
    std::fprintf(stderr, "%s: no --calib given: calibrating on %zu tokens sampled from the float model itself\n", P.c_str(), calib_n);
    calib = check(P, ember::sample_tokens(fm, calib_n, ctx, /*seed=*/1, threads));
    calib_desc = std::to_string(calib.size()) + " tokens sampled from the float model (seed 1)";
  }
  std::fprintf(stderr, "%s: quantizing to %s\n", P.c_str(), type.c_str());
  if (type == "int4" && args.str("method") == "gptq") {
    std::fprintf(stderr, "%s: GPTQ on %s\n", P.c_str(), calib_desc.c_str());
    // Progress: the Hessians' time, then a layer counter (on a terminal) and the total.
    const bool tty = isatty(fileno(stderr));
    double tg = now_seconds();
    const double th = tg;
    auto progress = [&](size_t done, size_t total, const std::string& tensor) {
      const double t = now_seconds();
      if (done == 0) {
        std::fprintf(stderr, "%s: layer input Hessians of %zu int4 layers in %.1f s\n", P.c_str(), total, t - th);
        tg = t;
      } else if (tty) {
        std::fprintf(stderr, "\r\033[K%s: GPTQ %zu / %zu layers (%s), ETA %.0f s", P.c_str(), done, total, tensor.c_str(),
                     (t - tg) / done * (total - done));
      }
      if (done == total && total > 0)
        std::fprintf(stderr, "%s%s: GPTQ of %zu layers in %.1f s\n", tty ? "\r\033[K" : "", P.c_str(), total, t - tg);
    };
    check(P, ember::quantize_model_gptq(spec, qopts, calib, ctx, threads, progress));
  } else {
    check(P, ember::quantize_model(spec, qopts));
  }
  spec.metadata["quantization"] =
      type == "int8" ? "int8 weights, symmetric per output channel; activations int8 per token (dynamic)"
                     : "int4 weights (" + args.str("method") + "), symmetric, a half-float scale per " +
                           std::to_string(qopts.group) + " input channels; embedding " +
                           (qopts.embedding_type == ember::DType::kI4 ? "int4" : "int8") +
                           "; activations int8 per token (dynamic)";
  auto qm = check(P, ember::load_model_spec(spec, in + " (" + type + ")"));
  std::fprintf(stderr, "%s: measuring on %s\n", P.c_str(), calib_desc.c_str());
  const ember::QuantReport rep = check(P, ember::measure_quantization(fm, qm, calib, ctx, threads));
  std::fprintf(stderr, "\n%-18s %s\n", "layer", "relative output error (isolated)");
  for (const auto& l : rep.layers) std::fprintf(stderr, "%-18s %.5f\n", l.name.c_str(), l.rel_err);
  const double increase = rep.quantized.ppl / rep.f32.ppl - 1.0;
  std::fprintf(stderr, "\nperplexity on the calibration tokens (%zu predicted, windows of %zu): f32 %.4f, %s %.4f (%+.3f%%)\n\n",
               rep.f32.n_tokens, ctx, rep.f32.ppl, type.c_str(), rep.quantized.ppl, 100.0 * increase);
  if (!(increase <= max_increase)) {  // NaN fails too
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s perplexity is %.2f%% above float, more than --max-ppl-increase %.2f%%; nothing written",
                  type.c_str(), 100.0 * increase, 100.0 * max_increase);
    fail(P, buf);
  }
  // Record the check in the file, then move it into place.
  char ppl[128];
  std::snprintf(ppl, sizeof ppl, "f32 %.4f, %s %.4f on %s", rep.f32.ppl, type.c_str(), rep.quantized.ppl, calib_desc.c_str());
  spec.metadata["calibration"] = ppl;
  return write();
}
