// ember-train: train a GPT on a text file with ember's own float ops and write an .ember model.
//
//   ember-train pretrain --data input.txt --out shakespeare.ember          # nanoGPT's CPU recipe
//
// nanoGPT's shakespeare_char recipe: character vocabulary (sorted set of the file's characters), first
// 90% of the text for training and the last 10% for validation, random windows of --block characters.
// Checkpoints go to --out (write_model_file: atomic) and --out.state (AdamW moments and counters,
// atomic) at every evaluation and at the end; --resume continues from them exactly (batches and
// dropout masks are functions of the seed and the step). The loss curve goes to --csv.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "ember/convert.h"
#include "ember/train.h"

using namespace ember_cli;

namespace {

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Sorted code points of `text` as UTF-8 strings: nanoGPT's sorted(set(data)).
std::vector<std::string> char_vocab(const std::string& text) {
  std::vector<bool> seen;
  std::vector<std::string> sym;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    if (cp >= seen.size()) seen.resize(cp + 1, false);
    seen[cp] = true;
    i += len;
  }
  std::vector<uint32_t> sorted;
  for (uint32_t cp = 0; cp < seen.size(); ++cp)
    if (seen[cp]) sorted.push_back(cp);
  for (uint32_t cp : sorted) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    sym.push_back(s);
  }
  return sym;
}

// nanoGPT's get_batch: B windows starting uniformly in [0, len - T), targets shifted by one. The
// windows are a function of (seed, stream, index) only, so a resumed run sees the same batches.
void get_batch(const std::vector<int32_t>& data, size_t B, size_t T, uint64_t seed, uint64_t stream, uint64_t index,
               std::vector<int32_t>& x, std::vector<int32_t>& y) {
  const uint64_t range = data.size() - T;
  uint64_t state = mix64(seed ^ mix64(stream * 0x9e3779b97f4a7c15ull + index));
  for (size_t b = 0; b < B; ++b) {
    state = mix64(state + b);
    const uint64_t i = static_cast<uint64_t>((static_cast<unsigned __int128>(state) * range) >> 64);
    for (size_t t = 0; t < T; ++t) {
      x[b * T + t] = data[i + t];
      y[b * T + t] = data[i + t + 1];
    }
  }
}

std::string fmt_time(double s) {
  char buf[32];
  const long v = static_cast<long>(s + 0.5);
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", v / 3600, (v / 60) % 60, v % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", v / 60, v % 60);
  return buf;
}

struct Split {
  std::vector<int32_t> train, val;
};

}  // namespace

int main(int argc, char** argv) {
  Args args("ember-train",
            "ember-train pretrain --data FILE.txt --out MODEL.ember [options]",
            "Trains a GPT language model from scratch on a text file (character vocabulary) on the CPU and\n"
            "writes it as a float .ember model that ember-generate, ember-perplexity and ember-quantize read.\n"
            "The defaults are nanoGPT's CPU recipe for tiny shakespeare (4 layers, 4 heads, 128 wide, 64\n"
            "characters of context, batch 12, 2000 iterations, AdamW lr 1e-3 with 100 warmup steps and\n"
            "cosine decay to 1e-4, beta2 0.99, weight decay 0.1, gradient clipping at 1).\n\n"
            "Data: the vocabulary is the sorted set of the file's characters; the first 90% of the text\n"
            "trains, the last 10% validates. Each iteration draws --batch random windows of --block\n"
            "characters (times --accum micro-batches). Every --eval-every iterations (and at the end) the\n"
            "mean loss over --eval-iters batches of each split is printed and a checkpoint is written:\n"
            "MODEL.ember and MODEL.ember.state (optimizer state), each atomically. --resume continues from\n"
            "them to --iters exactly as an uninterrupted run would. Progress goes to stderr; the loss curve\n"
            "to --csv (default MODEL.ember.csv).\n\n"
            "Weight decay applies to the weights of linear layers only (not to biases, LayerNorm gains or\n"
            "embeddings, unless --decay-embeddings). Results are reproducible for a given --seed at any\n"
            "--threads.");
  args.option("data", "", "FILE", "training text (UTF-8)");
  args.option("out", "o", "MODEL", "output .ember model (checkpoints are written here too)");
  args.option("vocab", "", "KIND", "vocabulary: char (the only kind so far)", "char");
  args.option("n-layer", "", "N", "transformer blocks", "4");
  args.option("n-head", "", "N", "attention heads", "4");
  args.option("n-embd", "", "N", "embedding width", "128");
  args.option("n-ff", "", "N", "feed-forward width (0: 4 x n-embd)", "0");
  args.option("block", "", "N", "context length (n_ctx) and training window", "64");
  args.option("norm", "", "pre|post", "LayerNorm placement: pre (GPT-2) or post (GPT-1)", "pre");
  args.option("act", "", "ACT", "activation: gelu (erf, nanoGPT), gelu_tanh (GPT-2) or relu", "gelu");
  args.option("untied", "", "", "separate LM head instead of reusing the token embedding");
  args.option("batch", "", "N", "sequences per micro-batch", "12");
  args.option("accum", "", "N", "micro-batches per iteration (gradient accumulation)", "1");
  args.option("iters", "", "N", "optimizer steps in total", "2000");
  args.option("lr", "", "LR", "peak learning rate", "1e-3");
  args.option("min-lr", "", "LR", "final learning rate of the cosine decay", "1e-4");
  args.option("warmup", "", "N", "linear warmup steps", "100");
  args.option("lr-decay-iters", "", "N", "cosine decay length (0: --iters)", "0");
  args.option("beta1", "", "B", "AdamW beta1", "0.9");
  args.option("beta2", "", "B", "AdamW beta2", "0.99");
  args.option("weight-decay", "", "WD", "AdamW decoupled weight decay", "0.1");
  args.option("grad-clip", "", "NORM", "clip the global gradient norm to this (0: off)", "1");
  args.option("decay-embeddings", "", "", "also apply weight decay to wte and wpe (nanoGPT decays every matrix)");
  args.option("dropout", "", "P", "dropout probability (embeddings, attention, residuals)", "0");
  args.option("eval-every", "", "N", "evaluate and checkpoint every N iterations (0: only at the end)", "250");
  args.option("eval-iters", "", "N", "batches per split and evaluation", "20");
  args.option("log-every", "", "N", "progress line every N iterations", "10");
  args.option("seed", "", "N", "seed of initialisation, batches and dropout", "1337");
  args.option("threads", "t", "N", "threads", std::to_string(default_threads()));
  args.option("csv", "", "FILE", "loss curve (default MODEL.csv next to --out)");
  args.option("resume", "", "", "continue from --out and --out.state");
  args.option("init", "", "MODEL", "start from the weights (and vocabulary) of this .ember model");
  args.parse(argc, argv);
  const std::string P = args.prog();

  if (args.positional().empty()) args.usage_error("give a command: pretrain");
  if (args.positional()[0] != "pretrain") args.usage_error("unknown command '" + args.positional()[0] + "' (expected pretrain)");
  if (args.positional().size() > 1) args.usage_error("unexpected argument '" + args.positional()[1] + "'");
  if (!args.has("data")) args.usage_error("--data is required");
  if (!args.has("out")) args.usage_error("--out is required");
  if (args.str("vocab") != "char") args.usage_error("--vocab " + args.str("vocab") + " is not supported (char)");
  if (args.has("resume") && args.has("init")) args.usage_error("--resume and --init exclude each other");
  const std::string out = args.str("out"), state_path = out + ".state";
  const std::string csv_path = args.has("csv") ? args.str("csv") : out + ".csv";

  ember::ModelConfig cfg;
  cfg.n_layer = static_cast<uint32_t>(args.integer("n-layer", 1, 1024));
  cfg.n_head = static_cast<uint32_t>(args.integer("n-head", 1, 1 << 16));
  cfg.n_embd = static_cast<uint32_t>(args.integer("n-embd", 1, 1 << 16));
  cfg.n_ff = static_cast<uint32_t>(args.integer("n-ff", 0, 1 << 20));
  if (cfg.n_ff == 0) cfg.n_ff = 4 * cfg.n_embd;
  cfg.n_ctx = static_cast<uint32_t>(args.integer("block", 2, 1 << 16));
  if (cfg.n_embd % cfg.n_head != 0)
    args.usage_error("--n-embd " + std::to_string(cfg.n_embd) + " is not a multiple of --n-head " + std::to_string(cfg.n_head));
  const std::string norm = args.str("norm"), act = args.str("act");
  if (norm != "pre" && norm != "post") args.usage_error("--norm must be pre or post (got '" + norm + "')");
  cfg.norm = norm == "pre" ? ember::NormPlacement::kPreLN : ember::NormPlacement::kPostLN;
  if (act == "gelu") cfg.activation = ember::Activation::kGeluErf;
  else if (act == "gelu_tanh") cfg.activation = ember::Activation::kGeluTanh;
  else if (act == "relu") cfg.activation = ember::Activation::kRelu;
  else args.usage_error("--act must be gelu, gelu_tanh or relu (got '" + act + "')");
  cfg.tied_lm_head = !args.has("untied");

  ember::TrainOptions topt;
  topt.batch = static_cast<uint32_t>(args.integer("batch", 1, 1 << 16));
  topt.n_threads = static_cast<uint32_t>(args.integer("threads", 1, 1024));
  topt.dropout = static_cast<float>(args.number("dropout", 0.0, 0.95));
  topt.seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  const uint64_t accum = static_cast<uint64_t>(args.integer("accum", 1, 1 << 16));
  const uint64_t iters = static_cast<uint64_t>(args.integer("iters", 1, int64_t{1} << 40));
  ember::LrSchedule sched;
  sched.lr = static_cast<float>(args.number("lr", 0.0, 10.0));
  sched.min_lr = static_cast<float>(args.number("min-lr", 0.0, 10.0));
  sched.warmup = static_cast<uint64_t>(args.integer("warmup", 0, int64_t{1} << 40));
  sched.decay_iters = static_cast<uint64_t>(args.integer("lr-decay-iters", 0, int64_t{1} << 40));
  if (sched.decay_iters == 0) sched.decay_iters = iters;
  ember::AdamWOptions adam;
  adam.beta1 = static_cast<float>(args.number("beta1", 0.0, 0.999999));
  adam.beta2 = static_cast<float>(args.number("beta2", 0.0, 0.999999));
  adam.weight_decay = static_cast<float>(args.number("weight-decay", 0.0, 10.0));
  adam.decay_embeddings = args.has("decay-embeddings");
  const double clip = args.number("grad-clip", 0.0, 1e9);
  const uint64_t eval_every = static_cast<uint64_t>(args.integer("eval-every", 0, int64_t{1} << 40));
  const uint64_t eval_iters = static_cast<uint64_t>(args.integer("eval-iters", 1, 1 << 20));
  const uint64_t log_every = static_cast<uint64_t>(args.integer("log-every", 1, int64_t{1} << 40));

  // Starting point: fresh, --init, or --resume (then the architecture and vocabulary come from the
  // checkpoint; architecture options that disagree with it are an error).
  ember::ModelSpec start;
  const bool from_file = args.has("resume") || args.has("init");
  if (from_file) {
    const std::string src = args.has("resume") ? out : args.str("init");
    start = check(P, ember::read_model_file(src));
    const ember::ModelConfig& c = start.config;
    auto same = [&](const char* opt, uint64_t mine, uint64_t theirs) {
      if (args.has(opt) && mine != theirs)
        fail(P, std::string("--") + opt + " " + std::to_string(mine) + " disagrees with " + src + " (" +
                    std::to_string(theirs) + ")");
    };
    same("n-layer", cfg.n_layer, c.n_layer);
    same("n-head", cfg.n_head, c.n_head);
    same("n-embd", cfg.n_embd, c.n_embd);
    same("n-ff", cfg.n_ff, c.n_ff);
    same("block", cfg.n_ctx, c.n_ctx);
    if (args.has("norm") && cfg.norm != c.norm) fail(P, "--norm disagrees with " + src);
    if (args.has("act") && cfg.activation != c.activation) fail(P, "--act disagrees with " + src);
    if (start.tokenizer.kind() != ember::TokenizerKind::kChars)
      fail(P, src + " has no character vocabulary (ember-train trains character models)");
    cfg = c;
  }
  topt.seq_len = cfg.n_ctx;

  // Data.
  const std::string text = check(P, read_file(args.str("data")));
  size_t bad = 0;
  if (!ember::is_valid_utf8(text, &bad))
    fail(P, args.str("data") + ": not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
  ember::Tokenizer tok;
  if (from_file) {
    tok = std::move(start.tokenizer);
  } else {
    tok = check(P, ember::Tokenizer::chars(char_vocab(text)));
  }
  cfg.n_vocab = static_cast<uint32_t>(tok.n_vocab());
  auto enc = tok.encode(text);
  if (!enc.ok()) fail(P, args.str("data") + ": " + enc.status().message());
  const std::vector<int32_t>& ids = enc.value();
  Split split;
  const size_t n_train = ids.size() * 9 / 10;
  split.train.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n_train));
  split.val.assign(ids.begin() + static_cast<std::ptrdiff_t>(n_train), ids.end());
  const size_t T = cfg.n_ctx, B = topt.batch;
  if (split.train.size() < T + 2 || split.val.size() < T + 2)
    fail(P, args.str("data") + ": too short for --block " + std::to_string(T) + " (" + std::to_string(ids.size()) +
                " characters; each split needs more than the block)");

  std::unique_ptr<ember::Trainer> tr;
  if (from_file) {
    tr = check(P, ember::Trainer::from_spec(start, topt));
    if (args.has("resume")) {
      check(P, tr->load_state(state_path));
      auto it = start.metadata.find("train.steps");
      if (it == start.metadata.end() || it->second != std::to_string(tr->steps()))
        fail(P, out + " and " + state_path + " are from different steps (an interrupted checkpoint?)");
    }
  } else {
    auto r = ember::Trainer::create(cfg, topt);
    if (!r.ok()) fail(P, r.status().message());
    tr = std::move(r).value();
  }
  const uint64_t first = args.has("resume") ? tr->steps() : 0;
  if (first >= iters) fail(P, out + " already has " + std::to_string(first) + " steps (--iters " + std::to_string(iters) + ")");

  std::fprintf(stderr, "%s: %s, %s, %s; n_layer %u, n_head %u, n_embd %u, n_ff %u, n_ctx %u, n_vocab %u: %.2fM parameters\n",
               P.c_str(), from_file ? (args.has("resume") ? "resuming" : "fine-tuning") : "new model",
               ember::norm_placement_name(cfg.norm), ember::activation_name(cfg.activation), cfg.n_layer, cfg.n_head,
               cfg.n_embd, cfg.n_ff, cfg.n_ctx, cfg.n_vocab, tr->n_params() / 1e6);
  std::fprintf(stderr, "%s: data %s: %zu train / %zu val tokens; batch %zu x %zu x accum %llu; %u threads; %s memory\n",
               P.c_str(), args.str("data").c_str(), split.train.size(), split.val.size(), B, T,
               static_cast<unsigned long long>(accum), topt.n_threads, human_bytes(tr->memory_bytes()).c_str());

  FILE* csv = std::fopen(csv_path.c_str(), args.has("resume") ? "a" : "w");
  if (!csv) fail(P, csv_path + ": cannot open for writing: " + std::strerror(errno));
  if (!args.has("resume")) std::fprintf(csv, "iter,lr,loss,grad_norm,ms,train_loss,val_loss\n");

  std::vector<int32_t> x(B * T), y(B * T);
  auto evaluate = [&](uint64_t it, double* tl, double* vl) {
    tr->set_training(false);
    for (int s = 0; s < 2; ++s) {
      const std::vector<int32_t>& d = s == 0 ? split.train : split.val;
      double sum = 0.0;
      for (uint64_t k = 0; k < eval_iters; ++k) {
        get_batch(d, B, T, topt.seed, 2 + static_cast<uint64_t>(s), it * eval_iters + k, x, y);
        sum += check(P, tr->forward(x.data(), y.data()));
      }
      (s == 0 ? *tl : *vl) = sum / static_cast<double>(eval_iters);
    }
    tr->set_training(true);
  };
  auto checkpoint = [&](double tl, double vl) {
    ember::ModelSpec spec = tr->to_spec();
    spec.tokenizer = check(P, ember::Tokenizer::chars(tok.tokens()));
    spec.metadata["train.data"] = args.str("data");
    spec.metadata["train.train_loss"] = std::to_string(tl);
    spec.metadata["train.val_loss"] = std::to_string(vl);
    spec.metadata["converter"] = "ember-train";
    // State first: a crash between the two leaves steps that disagree, which --resume detects.
    check(P, tr->save_state(state_path));
    check(P, ember::write_model_file(spec, out));
  };

  const double t_start = now_seconds();
  double train_seconds = 0.0, eval_seconds = 0.0, last_train = 0.0, last_val = 0.0;
  uint64_t timed = 0, evals = 0;
  double window_seconds = 0.0;  // training time since the last progress line
  uint64_t window_iters = 0;
  bool have_val = false;
  for (uint64_t it = first; it < iters; ++it) {
    if (eval_every > 0 && it % eval_every == 0 && (it != first || it == 0)) {
      const double e0 = now_seconds();
      evaluate(it, &last_train, &last_val);
      eval_seconds += now_seconds() - e0;
      ++evals;
      have_val = true;
      std::fprintf(stderr, "step %llu: train loss %.4f, val loss %.4f\n", static_cast<unsigned long long>(it), last_train,
                   last_val);
      std::fprintf(csv, "%llu,,,,,%.6f,%.6f\n", static_cast<unsigned long long>(it), last_train, last_val);
      std::fflush(csv);
      if (it != first) checkpoint(last_train, last_val);
    }
    const double t0 = now_seconds();
    const float lr = ember::learning_rate(sched, it);
    tr->zero_grad();
    double loss = 0.0;
    for (uint64_t a = 0; a < accum; ++a) {
      get_batch(split.train, B, T, topt.seed, 1, it * accum + a, x, y);
      loss += check(P, tr->forward(x.data(), y.data()));
      check(P, tr->backward(1.0f / static_cast<float>(accum)));
    }
    loss /= static_cast<double>(accum);
    const double norm = tr->clip_grad_norm(clip);
    tr->step(lr, adam);
    const double dt = now_seconds() - t0;
    if (!std::isfinite(loss)) fail(P, "loss is " + std::to_string(loss) + " at iteration " + std::to_string(it) + "; try a lower --lr");
    train_seconds += dt;
    window_seconds += dt;
    ++timed;
    ++window_iters;
    std::fprintf(csv, "%llu,%.6g,%.6f,%.5f,%.3f,,\n", static_cast<unsigned long long>(it), lr, loss, norm, dt * 1e3);
    if ((it + 1) % log_every == 0 || it + 1 == iters) {
      // ms/iter over this progress interval; the ETA uses the run's average.
      const double ms = window_seconds / static_cast<double>(window_iters) * 1e3;
      const double avg_ms = train_seconds / static_cast<double>(timed) * 1e3;
      window_seconds = 0.0;
      window_iters = 0;
      const double left = static_cast<double>(iters - it - 1);
      const double evals_left = eval_every ? std::floor(left / static_cast<double>(eval_every)) + 1 : 1;
      const double eval_each = evals ? eval_seconds / static_cast<double>(evals) : 0.0;
      char val[32] = "-";
      if (have_val) std::snprintf(val, sizeof val, "%.4f", last_val);
      std::fprintf(stderr, "iter %llu/%llu | loss %.4f | val %s | lr %.2e | norm %.3f | %.1f ms/iter | %.0f tok/s | ETA %s\n",
                   static_cast<unsigned long long>(it + 1), static_cast<unsigned long long>(iters), loss, val, lr, norm, ms,
                   static_cast<double>(B * T * accum) / (ms / 1e3),
                   fmt_time(left * avg_ms / 1e3 + evals_left * eval_each).c_str());
      std::fflush(csv);
    }
  }
  const double e0 = now_seconds();
  evaluate(iters, &last_train, &last_val);
  eval_seconds += now_seconds() - e0;
  std::fprintf(csv, "%llu,,,,,%.6f,%.6f\n", static_cast<unsigned long long>(iters), last_train, last_val);
  std::fclose(csv);
  checkpoint(last_train, last_val);
  std::fprintf(stderr,
               "done: %llu iterations in %s (%.1f ms/iter training, %.1f s evaluating); step %llu: train loss %.4f, "
               "val loss %.4f; wrote %s\n",
               static_cast<unsigned long long>(iters - first), fmt_time(now_seconds() - t_start).c_str(),
               train_seconds / static_cast<double>(timed) * 1e3, eval_seconds, static_cast<unsigned long long>(iters),
               last_train, last_val, out.c_str());
  return 0;
}
