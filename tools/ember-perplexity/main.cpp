// ember-perplexity: mean negative log-likelihood of a text under a model.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "ember/model.h"
#include "ember/session.h"

using namespace ember_cli;

int main(int argc, char** argv) {
  Args args("ember-perplexity", "ember-perplexity -m MODEL (-f TEXT | --tokens FILE) [--ctx N] [--kv f32|int8] [--json]",
            "Splits the tokens into non-overlapping windows of N tokens (the last may be shorter); in each\n"
            "window every token after the first is predicted from the window's earlier tokens. Prints the\n"
            "number of predicted tokens, their mean negative log-likelihood (nats) and the perplexity.\n"
            "TEXT is encoded with the model's tokenizer; a tokens FILE holds whitespace-separated ids, or\n"
            "little-endian uint16 ids when its name ends in .bin (nanoGPT's train.bin / val.bin).");
  args.option("model", "m", "MODEL", "model file (.ember)");
  args.option("file", "f", "TEXT", "text file to evaluate");
  args.option("tokens", "", "FILE", "token id file to evaluate (instead of -f)");
  args.option("ctx", "c", "N", "window length in tokens", "n_ctx of the model");
  args.option("threads", "t", "N", "threads", std::to_string(default_threads()));
  args.option("kv", "", "TYPE", "KV cache type: f32 or int8", "f32");
  args.option("json", "", "", "print {\"n_tokens\": ..., \"mean_nll\": ..., \"ppl\": ...}");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (!args.positional().empty()) args.usage_error("unexpected argument '" + args.positional()[0] + "'");
  if (!args.has("model")) args.usage_error("no model given (-m MODEL)");
  if (args.has("file") == args.has("tokens")) args.usage_error("give exactly one of -f TEXT or --tokens FILE");
  const uint32_t n_threads = static_cast<uint32_t>(args.integer("threads", 1, 1024));
  auto kv = ember::kv_type_from_name(args.str("kv"));
  if (!kv.ok()) args.usage_error("--kv: " + kv.status().message());

  auto model = check(P, ember::Model::load(args.str("model")));
  const size_t n_ctx = model->config().n_ctx;
  const size_t ctx = args.has("ctx") ? static_cast<size_t>(args.integer("ctx", 2, static_cast<int64_t>(n_ctx))) : n_ctx;
  std::vector<int32_t> tokens;
  if (args.has("tokens")) {
    tokens = check(P, read_token_file(args.str("tokens")));
  } else {
    if (model->tokenizer().kind() == ember::TokenizerKind::kNone)
      fail(P, args.str("model") + " has no tokenizer; give token ids with --tokens");
    const std::string text = check(P, ember::read_file(args.str("file")));
    auto enc = model->tokenizer().encode(text);
    if (!enc.ok()) fail(P, args.str("file") + ": " + enc.status().message());
    tokens = std::move(enc).value();
  }
  ember::SessionOptions so;
  so.n_threads = n_threads;
  so.kv_type = *kv;
  auto session = check(P, ember::Session::create(model, so));
  const bool tty = isatty(fileno(stderr));
  const double t0 = now_seconds();
  auto progress = [&](size_t done, size_t total) {
    if (!tty) return;
    const double dt = now_seconds() - t0;
    std::fprintf(stderr, "\r%s: %zu / %zu tokens (%.0f tok/s, ETA %.0f s)   ", P.c_str(), done, total,
                 done / (dt > 0 ? dt : 1e-9), dt / done * (total - done));
  };
  auto r = check(P, ember::compute_perplexity(*session, tokens, ctx, progress));
  if (tty) std::fputs("\n", stderr);
  if (args.has("json")) {
    std::printf("{\"n_tokens\": %zu, \"mean_nll\": %.9g, \"ppl\": %.9g, \"ctx\": %zu, \"kv\": \"%s\"}\n", r.n_tokens, r.mean_nll,
                r.ppl, ctx, ember::kv_type_name(*kv));
  } else {
    std::printf("tokens predicted: %zu (windows of %zu, KV cache %s)\nmean NLL: %.6f nats\nperplexity: %.4f\n", r.n_tokens,
                ctx, ember::kv_type_name(*kv), r.mean_nll, r.ppl);
  }
  std::fprintf(stderr, "%s: %.1f tokens/s, %u threads\n", P.c_str(), tokens.size() / (now_seconds() - t0), session->n_threads());
  return 0;
}
