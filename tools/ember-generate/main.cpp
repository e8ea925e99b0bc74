// ember-generate: stream text from a model.
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "ember/generate.h"
#include "ember/model.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "ember/tokenizer.h"

using namespace ember_cli;

int main(int argc, char** argv) {
  Args args("ember-generate", "ember-generate -m MODEL (-p PROMPT | --ids IDS) [-n N] [options]",
            "Generates text from an .ember model, printing it as it is produced. The prompt is encoded with\n"
            "the model's tokenizer (or given as token ids with --ids). Generation stops after N tokens, at\n"
            "the model's end-of-text token, or when the context (n_ctx) is full, unless --keep-going.\n"
            "--temp 0 is greedy. A speed line goes to stderr.");
  args.option("model", "m", "MODEL", "model file (.ember)");
  args.option("prompt", "p", "PROMPT", "prompt text");
  args.option("ids", "", "IDS", "prompt as token ids, e.g. \"464 2068\" (instead of -p)");
  args.option("n-predict", "n", "N", "tokens to generate", "128");
  args.option("temp", "", "T", "temperature; 0 = greedy", "0.8");
  args.option("top-k", "", "K", "keep the K most likely tokens; 0 = all", "40");
  args.option("top-p", "", "P", "keep the smallest set with probability >= P; 1 = all", "0.95");
  args.option("repeat-penalty", "", "R", "penalty for recently seen tokens; 1 = off", "1.0");
  args.option("repeat-last-n", "", "N", "how many recent tokens the penalty looks at", "64");
  args.option("seed", "s", "SEED", "random seed (a run with the same seed repeats exactly)", "random");
  args.option("threads", "t", "N|auto", "threads (auto: 1 for models under 10M parameters, else " +
              std::to_string(default_threads()) + ")", "auto");
  args.option("kv", "", "TYPE", "KV cache type: f32, or int8 (a quarter of the memory; see the README)", "f32");
  args.option("keep-going", "", "", "when the context is full, keep the last n_ctx/2 tokens and continue");
  args.option("ignore-eos", "", "", "do not stop at the end-of-text token");
  args.option("no-echo", "", "", "do not print the prompt before the generated text");
  args.option("json", "", "", "print {\"ids\": [...], \"text\": ...} (prompt excluded) instead of streaming");
  args.option("quiet", "q", "", "no speed line on stderr");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (!args.positional().empty()) args.usage_error("unexpected argument '" + args.positional()[0] + "'");
  if (!args.has("model")) args.usage_error("no model given (-m MODEL)");
  if (args.has("prompt") == args.has("ids")) args.usage_error("give exactly one of -p PROMPT or --ids IDS");

  const int64_t n_predict = args.integer("n-predict", 0, 1 << 30);
  if (args.str("threads") != "auto") args.integer("threads", 1, 1024);  // a usage error before loading anything
  auto kv = ember::kv_type_from_name(args.str("kv"));
  if (!kv.ok()) args.usage_error("--kv: " + kv.status().message());
  ember::SamplerParams sp;
  sp.temperature = static_cast<float>(args.number("temp", 0.0, 1e6));
  sp.top_k = static_cast<int32_t>(args.integer("top-k", 0, INT32_MAX));
  sp.top_p = static_cast<float>(args.number("top-p", 1e-9, 1.0));
  sp.repeat_penalty = static_cast<float>(args.number("repeat-penalty", 1e-3, 1e3));
  sp.repeat_last_n = static_cast<int32_t>(args.integer("repeat-last-n", -1, INT32_MAX));
  if (args.str("seed") == "random") {
    sp.seed = static_cast<uint64_t>(now_seconds() * 1e9) ^ (static_cast<uint64_t>(getpid()) << 32);
  } else {
    sp.seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  }
  const bool json = args.has("json"), quiet = args.has("quiet");

  const double t_load = now_seconds();
  auto model = check(P, ember::Model::load(args.str("model")));
  const ember::Tokenizer& tok = model->tokenizer();
  const bool has_tok = tok.kind() != ember::TokenizerKind::kNone;
  std::vector<int32_t> prompt;
  if (args.has("ids")) {
    prompt = check(P, parse_ids(args.str("ids")));
  } else {
    if (!has_tok) fail(P, args.str("model") + " has no tokenizer; give the prompt as token ids with --ids");
    const std::string text = args.str("prompt");
    if (text.empty()) fail(P, "the prompt is empty; give some text with -p");
    auto enc = tok.encode(text);
    if (!enc.ok())
      fail(P, args.str("model") + ": prompt: " + enc.status().message() +
                  (tok.kind() == ember::TokenizerKind::kChars ? "; for any English text use the English starter, models/english.ember" : ""));
    prompt = std::move(enc).value();
  }
  if (prompt.empty()) fail(P, "the prompt is empty");
  const size_t n_ctx = model->config().n_ctx;
  if (prompt.size() > n_ctx)
    fail(P, "the prompt is " + std::to_string(prompt.size()) + " tokens, longer than the model's context of " +
                std::to_string(n_ctx) + " tokens");
  const uint32_t n_threads = threads_for(args, *model);
  ember::SessionOptions so;
  so.n_threads = n_threads;
  so.kv_type = *kv;
  auto session = check(P, ember::Session::create(model, so));
  auto sampler = check(P, ember::Sampler::create(sp, model->config().n_vocab));
  const double t_ready = now_seconds();

  ember::GenerateOptions go;
  go.max_tokens = n_predict;
  go.ignore_eot = args.has("ignore-eos");
  go.keep_going = args.has("keep-going");
  go.echo_prompt = !json && !args.has("no-echo") && has_tok;
  auto gen = check(P, ember::Generator::create(*session, sampler, go));
  const double t0 = now_seconds();
  check(P, gen->start(prompt.data(), prompt.size()));
  const double t_prompt = now_seconds() - t0;

  // The generator's steps: the echoed prompt (token -1), each token's text as it becomes valid UTF-8, the
  // rest at the end (token -1). A model without a tokenizer prints its ids.
  ember::GenerateStep step;
  const double t1 = now_seconds();
  while (check(P, gen->next(&step))) {
    if (json) continue;
    if (step.token >= 0 && !has_tok) {
      std::printf("%d ", static_cast<int>(step.token));
    } else {
      std::fwrite(step.text.data(), 1, step.text.size(), stdout);
    }
    std::fflush(stdout);
  }
  const double t_gen = now_seconds() - t1;
  std::string stop_reason;
  if (gen->stop_reason() == ember::StopReason::kEndOfText) {
    stop_reason = "end of text";
  } else if (gen->stop_reason() == ember::StopReason::kContextFull) {
    stop_reason = "context full (n_ctx " + std::to_string(n_ctx) + "); pass --keep-going to continue by shifting the window";
  }
  const std::vector<int32_t>& generated = gen->generated();
  const size_t n_refills = gen->n_shifts();
  if (json) {
    // "special_ids": the generated ids that stand for no text (their "<|token N|>" placeholder or
    // "<|endoftext|>" is in "text"), each once, in order of first appearance.
    std::string ids, special, text;
    std::set<int32_t> seen;
    for (size_t i = 0; i < generated.size(); ++i) {
      const int32_t id = generated[i];
      ids += (i ? ", " : "") + std::to_string(id);
      if (has_tok && tok.is_special(id) && seen.insert(id).second)
        special += (special.empty() ? "" : ", ") + std::to_string(id);
      if (has_tok) text += tok.piece(id);
    }
    ember::Utf8Stream s;
    text = s.push(text) + s.flush();
    std::printf("{\"ids\": [%s], \"special_ids\": [%s], \"text\": %s}\n", ids.c_str(), special.c_str(),
                json_escape(text).c_str());
  } else {
    std::fputs("\n", stdout);
  }
  std::fflush(stdout);
  if (!stop_reason.empty()) std::fprintf(stderr, "%s: stopped: %s\n", P.c_str(), stop_reason.c_str());
  if (!quiet) {
    std::fprintf(stderr,
                 "%s: load %.0f ms | prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | %u threads | kv %s | seed %llu%s\n",
                 P.c_str(), (t_ready - t_load) * 1e3, prompt.size(), prompt.size() / (t_prompt > 0 ? t_prompt : 1e-9),
                 generated.size(), generated.size() / (t_gen > 0 ? t_gen : 1e-9), session->n_threads(), ember::kv_type_name(*kv),
                 static_cast<unsigned long long>(sp.seed),
                 n_refills ? (" | window shifted " + std::to_string(n_refills) + "x").c_str() : "");
  }
  return 0;
}
