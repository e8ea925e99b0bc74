// ember-inspect: what is inside an .ember file, and whether it verifies.
#include <cstdio>
#include <string>

#include "../common/cli.h"
#include "ember/model.h"

using namespace ember_cli;

namespace {
std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) r += (i ? " x " : "") + std::to_string(s[i]);
  return r;
}
}  // namespace

int main(int argc, char** argv) {
  Args args("ember-inspect", "ember-inspect MODEL [--json]",
            "Loads and verifies an .ember model (FlatBuffers verification, then every tensor the config\n"
            "needs with its shape, dtype and data range), then prints its config, tokenizer, metadata and\n"
            "tensors. Exits 1 with the reason when the file does not verify.");
  args.option("json", "", "", "print as JSON");
  args.option("no-tensors", "", "", "omit the tensor table");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (args.positional().size() != 1) args.usage_error("give exactly one MODEL file");
  auto model = check(P, ember::Model::load(args.positional()[0]));
  const ember::ModelConfig& c = model->config();
  const ember::Tokenizer& tok = model->tokenizer();
  uint64_t params = 0;
  for (const auto& t : model->tensors()) {
    uint64_t n = 1;
    for (auto d : t.shape) n *= d;
    params += n;
  }
  const bool tensors = !args.has("no-tensors");
  if (args.has("json")) {
    std::printf("{\"file\": %s, \"file_bytes\": %llu, \"format_version\": %u, \"verified\": true,\n", json_escape(model->path()).c_str(),
                static_cast<unsigned long long>(model->file_size()), model->format_version());
    std::printf(" \"config\": {\"n_vocab\": %u, \"n_ctx\": %u, \"n_embd\": %u, \"n_head\": %u, \"n_layer\": %u, \"n_ff\": %u, "
                "\"norm_eps\": %g, \"norm\": \"%s\", \"activation\": \"%s\", \"tied_lm_head\": %s, \"n_classes\": %u},\n",
                c.n_vocab, c.n_ctx, c.n_embd, c.n_head, c.n_layer, c.n_ff, c.norm_eps,
                c.norm == ember::NormPlacement::kPreLN ? "pre-ln" : "post-ln",
                c.activation == ember::Activation::kGeluTanh ? "gelu_tanh" : c.activation == ember::Activation::kGeluErf ? "gelu_erf" : "relu",
                c.tied_lm_head ? "true" : "false", c.n_classes);
    std::printf(" \"tokenizer\": {\"kind\": \"%s\", \"n_tokens\": %d, \"n_merges\": %zu, \"eot_id\": %d},\n",
                ember::tokenizer_kind_name(tok.kind()), tok.kind() == ember::TokenizerKind::kNone ? 0 : tok.n_vocab(),
                tok.kind() == ember::TokenizerKind::kNone ? 0 : tok.merges().size(), tok.kind() == ember::TokenizerKind::kNone ? -1 : tok.eot_id());
    std::printf(" \"n_params\": %llu,\n \"metadata\": {", static_cast<unsigned long long>(params));
    bool first = true;
    for (const auto& kv : model->metadata()) {
      std::printf("%s%s: %s", first ? "" : ", ", json_escape(kv.first).c_str(), json_escape(kv.second).c_str());
      first = false;
    }
    std::printf("}");
    if (tensors) {
      std::printf(",\n \"tensors\": [");
      first = true;
      for (const auto& t : model->tensors()) {
        std::string shape;
        for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
        std::printf("%s\n  {\"name\": %s, \"dtype\": \"%s\", \"shape\": [%s], \"bytes\": %llu, \"offset\": %llu}",
                    first ? "" : ",", json_escape(t.name).c_str(), ember::dtype_name(t.dtype), shape.c_str(),
                    static_cast<unsigned long long>(t.bytes), static_cast<unsigned long long>(t.offset));
        first = false;
      }
      std::printf("]");
    }
    std::printf("}\n");
    return 0;
  }
  std::printf("file:        %s (%s, format version %u) - verified OK\n", model->path().c_str(),
              human_bytes(model->file_size()).c_str(), model->format_version());
  std::printf("config:      n_vocab %u, n_ctx %u, n_embd %u, n_head %u, n_layer %u, n_ff %u\n", c.n_vocab, c.n_ctx,
              c.n_embd, c.n_head, c.n_layer, c.n_ff);
  std::printf("             %s, %s, layer-norm eps %g, LM head %s%s\n", ember::norm_placement_name(c.norm),
              ember::activation_name(c.activation), c.norm_eps, c.tied_lm_head ? "tied to wte" : "separate",
              c.n_classes ? (", classifier with " + std::to_string(c.n_classes) + " classes").c_str() : "");
  std::printf("parameters:  %llu\n", static_cast<unsigned long long>(params));
  if (tok.kind() == ember::TokenizerKind::kNone) {
    std::printf("tokenizer:   none\n");
  } else {
    std::printf("tokenizer:   %s, %d tokens, %zu merges%s\n", ember::tokenizer_kind_name(tok.kind()), tok.n_vocab(),
                tok.merges().size(), tok.eot_id() >= 0 ? (", end-of-text id " + std::to_string(tok.eot_id())).c_str() : "");
  }
  for (const auto& kv : model->metadata()) std::printf("metadata:    %s = %s\n", kv.first.c_str(), kv.second.c_str());
  if (tensors) {
    std::printf("\n%-28s %-5s %-16s %12s %12s\n", "tensor", "dtype", "shape", "bytes", "offset");
    for (const auto& t : model->tensors())
      std::printf("%-28s %-5s %-16s %12llu %12llu\n", t.name.c_str(), ember::dtype_name(t.dtype), shape_str(t.shape).c_str(),
                  static_cast<unsigned long long>(t.bytes), static_cast<unsigned long long>(t.offset));
  }
  return 0;
}
