// ember-train: train a GPT on a text file with ember's own float ops and write an .ember model.
//
//   ember-train pretrain --data input.txt --out shakespeare.ember          # nanoGPT's CPU recipe
//   ember-train finetune --init shakespeare.ember --data sms.jsonl --out spam.ember   # GPT-1 fine-tuning
//
// nanoGPT's shakespeare_char recipe: character vocabulary (sorted set of the file's characters), first
// 90% of the text for training and the last 10% for validation, random windows of --block characters.
// Checkpoints go to --out (write_model_file: atomic) and --out.state (AdamW moments and counters,
// atomic) at every evaluation and at the end; --resume continues from them exactly (batches and
// dropout masks are functions of the seed and the step). The loss curve goes to --csv.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../common/cli.h"
#include "ember/bpe_trainer.h"
#include "ember/classify.h"
#include "ember/convert.h"
#include "ember/dataset.h"
#include "ember/finetune.h"
#include "ember/pretrain.h"
#include "ember/train.h"

using namespace ember_cli;

namespace {

// printf of one number, as a string.
std::string fmt_number(double v, const char* format = "%g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string fmt_time(double s) {
  char buf[32];
  const long v = static_cast<long>(s + 0.5);
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", v / 3600, (v / 60) % 60, v % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", v / 60, v % 60);
  return buf;
}

struct TextFile {  // a --data text (its parts: ember::TextPart views into `text`)
  std::string path, text;
};

std::string base_name(const std::string& p) {
  const size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// The SVG goes next to the CSV: name.csv -> name.svg, anything else gets ".svg" appended.
std::string svg_path_for(const std::string& csv) {
  if (csv.size() > 4 && csv.compare(csv.size() - 4, 4, ".csv") == 0) return csv.substr(0, csv.size() - 4) + ".svg";
  return csv + ".svg";
}

// Test hook: EMBER_TRAIN_CHECKPOINT_PAUSE_MS=N sleeps N ms after each file of a checkpoint, so that a
// test's kill -9 lands between them (tests/train/test_train_tool.cpp).
void checkpoint_pause() {
  static const long ms = [] {
    const char* v = std::getenv("EMBER_TRAIN_CHECKPOINT_PAUSE_MS");
    return v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

bool file_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A nanoGPT token file (its prepare.py: np.array(ids, dtype=np.uint16).tofile("train.bin"); read by
// tools/common's read_token_file) whose every id must be in the model's vocabulary.
std::vector<int32_t> read_token_ids(const std::string& P, const std::string& path, uint32_t n_vocab) {
  std::vector<int32_t> ids = check(P, read_token_file(path));
  for (size_t i = 0; i < ids.size(); ++i)
    if (static_cast<uint32_t>(ids[i]) >= n_vocab)
      fail(P, path + ": token " + std::to_string(ids[i]) + " at index " + std::to_string(i) + " is outside the vocabulary (n_vocab " +
                  std::to_string(n_vocab) + ")");
  return ids;
}

int finetune(const Args& args, const std::string& P);
int pretrain(const Args& args, const std::string& P);
int plot(const Args& args, const std::string& P);

}  // namespace

int main(int argc, char** argv) {
  Args args("ember-train",
            "ember-train pretrain --data FILE.txt [--data FILE2.txt ...] --out MODEL.ember [options]\n"
            "       ember-train finetune --init PRETRAINED.ember --data FILE.jsonl --out MODEL.ember [options]\n"
            "       ember-train plot LOSS.csv [-o LOSS.svg] [--title TEXT]",
            "Trains a GPT language model from scratch on text files on the CPU and writes it as a float\n"
            ".ember model that ember-generate, ember-perplexity and ember-quantize read. The defaults are\n"
            "nanoGPT's CPU recipe for tiny shakespeare (4 layers, 4 heads, 128 wide, 64 tokens of context,\n"
            "batch 12, 2000 iterations, AdamW lr 1e-3 with 100 warmup steps and cosine decay to 1e-4, beta2\n"
            "0.99, weight decay 0.1, gradient clipping at 1).\n\n"
            "Data: each --data file (UTF-8) is split into train (first 90%) and val (last 10%): --split chars\n"
            "cuts after floor(0.9 n) characters (nanoGPT), --split lines at the first newline at or after\n"
            "90% of the bytes. Vocabulary (--vocab): char, the sorted set of the files' characters; bpe, a\n"
            "GPT-2-style byte-level BPE of --vocab-size tokens (256 bytes, learned merges, <|endoftext|>)\n"
            "that ember learns from the train parts only (any UTF-8 encodes: every byte is a token); gpt2,\n"
            "GPT-2's own BPE from --tokenizer-dir (encoder.json + vocab.bpe, or vocab.json + merges.txt).\n"
            "The parts are encoded per file and joined (with <|endoftext|> between files when the vocabulary\n"
            "has it). A --data FILE.bin is instead a nanoGPT token file (little-endian uint16 ids, as its\n"
            "prepare.py writes train.bin and val.bin), already split: --val-data names the val file\n"
            "(default val.bin beside train.bin); the ids are GPT-2's (--vocab gpt2) or index the sorted\n"
            "characters of --vocab-from TEXT (--vocab char, nanoGPT's meta.pkl for that text).\n"
            "Each iteration draws --batch random windows of --block tokens (times --accum micro-batches).\n"
            "Every --eval-every iterations (and at the end) the mean loss over --eval-iters\n"
            "batches of each split is printed and a checkpoint is written: MODEL.ember and MODEL.ember.state\n"
            "(optimizer state), each atomically, in an order that a kill at any moment leaves resumable.\n"
            "--resume continues from them to --iters exactly as an uninterrupted run would. Progress goes to\n"
            "stderr; the loss curve to --csv (default MODEL.ember.csv) and, drawn, to the same name with\n"
            ".svg, both rewritten at every checkpoint. plot draws the SVG of an existing CSV.\n\n"
            "Weight decay applies to the weights of linear layers only (not to biases, LayerNorm gains or\n"
            "embeddings, unless --decay-embeddings). Results are reproducible for a given --seed at any\n"
            "--threads.\n\n"
            "finetune: GPT-1 task fine-tuning (Radford et al. 2018) of a pretrained model into a classifier\n"
            "that ember-classify runs. Two new tokens (start, extract) are appended to the vocabulary (ids\n"
            "n_vocab and n_vocab + 1, N(0, 0.02) embeddings, outside the tokenizer so no text produces them)\n"
            "and a new head reads the extract token's final hidden state. --data is JSON Lines\n"
            "({\"text\", \"label\", \"split\"}): rows of split \"train\" train (--balanced: only those marked\n"
            "balanced), the classes are the sorted distinct train labels. Loss = classification +\n"
            "--lm-weight x language modelling of the text; linear warmup over --warmup-frac of the steps,\n"
            "then linear decay to 0; AdamW (betas 0.9, 0.999, weight decay 0.01 on weights, or\n"
            "--weight-decay if given), gradient clipping. Accuracy on --eval-split rows after every epoch.\n"
            "The loss curve (per step: the loss, its classification and LM parts; per epoch: the eval\n"
            "split's classification loss and accuracy) goes to --csv (default MODEL.ember.csv) and the SVG\n"
            "beside it, rewritten after every epoch.\n"
            "A text longer than n_ctx - 2 tokens keeps its first and last halves (--truncate head+tail; the\n"
            "model records the rule, ember-classify cuts the same way) or its first tokens (head).\n"
            "finetune defaults: --lr 6.25e-5, --batch 8, --epochs 3.");
  args.option("data", "", "FILE", "training text (UTF-8; pretrain takes several) or a nanoGPT token file (.bin)");
  args.option("val-data", "", "FILE", "with a token file: the val tokens (default: val.bin beside a train.bin)");
  args.option("vocab-from", "", "TEXT", "--vocab char with a token file: the text whose sorted characters the ids index");
  args.option("out", "o", "MODEL", "output .ember model (checkpoints are written here too); plot: the SVG");
  args.option("vocab", "", "KIND", "vocabulary: char, bpe (learned from the data) or gpt2 (--tokenizer-dir)", "char");
  args.option("vocab-size", "", "N", "--vocab bpe: tokens in the vocabulary (256 bytes + merges + <|endoftext|>)", "4096");
  args.option("tokenizer-dir", "", "DIR", "--vocab gpt2: directory with encoder.json + vocab.bpe (or vocab.json + merges.txt)");
  args.option("split", "", "RULE", "train/val split of each file: chars (first 90% of characters) or lines (at a line end)", "chars");
  args.option("n-layer", "", "N", "transformer blocks", "4");
  args.option("n-head", "", "N", "attention heads", "4");
  args.option("n-embd", "", "N", "embedding width", "128");
  args.option("n-ff", "", "N", "feed-forward width (0: 4 x n-embd)", "0");
  args.option("block", "", "N", "context length (n_ctx) and training window", "64");
  args.option("norm", "", "pre|post", "LayerNorm placement: pre (GPT-2) or post (GPT-1)", "pre");
  args.option("act", "", "ACT", "activation: gelu (erf, nanoGPT), gelu_tanh (GPT-2) or relu", "gelu");
  args.option("untied", "", "", "separate LM head instead of reusing the token embedding (better with a char vocabulary)");
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
  args.option("csv", "", "FILE", "loss curve (default MODEL.csv next to --out; the SVG beside it)");
  args.option("title", "", "TEXT", "plot: the chart's title (default: the CSV's name)");
  args.option("resume", "", "", "continue from --out and --out.state");
  args.option("init", "", "MODEL", "start from the weights (and vocabulary) of this .ember model");
  args.option("lm-weight", "", "L", "finetune: weight of the auxiliary LM loss (0: off)", "0.5");
  args.option("epochs", "", "N", "finetune: passes over the train rows", "3");
  args.option("warmup-frac", "", "F", "finetune: linear warmup as a fraction of all steps", "0.002");
  args.option("balanced", "", "", "finetune: train on rows marked \"balanced\": true only");
  args.option("eval-split", "", "NAME", "finetune: split to report accuracy on after each epoch (none: off)", "val");
  args.option("truncate", "", "HOW", "finetune: a text longer than n_ctx - 2 tokens keeps its head, or head+tail (halves)", "head+tail");
  args.parse(argc, argv);
  const std::string P = args.prog();
  ember::remove_temporaries_on_signals(P.c_str());

  if (args.positional().empty()) args.usage_error("give a command: pretrain, finetune or plot");
  const std::string cmd = args.positional()[0];
  if (cmd != "pretrain" && cmd != "finetune" && cmd != "plot")
    args.usage_error("unknown command '" + cmd + "' (expected pretrain, finetune or plot)");
  if (cmd == "plot") return plot(args, P);
  if (args.positional().size() > 1) args.usage_error("unexpected argument '" + args.positional()[1] + "'");
  if (args.has("title")) args.usage_error("--title is a plot option");
  if (cmd == "finetune") {
    for (const char* o : {"vocab-size", "tokenizer-dir", "split", "val-data", "vocab-from"})
      if (args.has(o)) args.usage_error(std::string("--") + o + " is a pretrain option");
    if (args.all("data").size() > 1) args.usage_error("finetune takes one --data file");
    return finetune(args, P);
  }
  return pretrain(args, P);
}

namespace {

int plot(const Args& args, const std::string& P) {
  if (args.positional().size() != 2) args.usage_error("plot takes one CSV file: ember-train plot LOSS.csv [-o LOSS.svg]");
  for (const char* o : {"data", "val-data", "vocab-from", "init", "resume", "csv"})
    if (args.has(o)) args.usage_error(std::string("--") + o + " is not a plot option");
  const std::string csv = args.positional()[1];
  const std::string svg = args.has("out") ? args.str("out") : svg_path_for(csv);
  check_outputs(P, {svg}, {csv});
  const std::string text = check(P, ember::read_file(csv));
  ember::LossCurveKind kind = ember::LossCurveKind::kPretrain;
  const std::vector<ember::LossRow> rows = check(P, ember::parse_loss_curve_csv(text, csv, &kind));
  const std::string doc = ember::loss_curve_svg(rows, args.has("title") ? args.str("title") : "ember-train: " + base_name(csv), kind);
  check(P, ember::write_file_atomic(svg, doc.data(), doc.size()));
  size_t evals = 0;
  for (const auto& r : rows) evals += r.eval;
  std::fprintf(stderr, "%s: %zu steps and %zu evaluations from %s; wrote %s\n", P.c_str(), rows.size() - evals, evals, csv.c_str(),
               svg.c_str());
  return 0;
}

int pretrain(const Args& args, const std::string& P) {
  for (const char* o : {"lm-weight", "epochs", "warmup-frac", "balanced", "eval-split", "truncate"})
    if (args.has(o)) args.usage_error(std::string("--") + o + " is a finetune option");
  if (!args.has("data")) args.usage_error("--data is required");
  const std::vector<std::string> data_paths = args.all("data");
  const bool token_files = ends_with(data_paths[0], ".bin");
  if (!args.has("out")) args.usage_error("--out is required");
  const std::string vocab = args.str("vocab"), split_rule = args.str("split");
  if (vocab != "char" && vocab != "bpe" && vocab != "gpt2")
    args.usage_error("--vocab must be char, bpe or gpt2 (got '" + vocab + "')");
  if (split_rule != "chars" && split_rule != "lines") args.usage_error("--split must be chars or lines (got '" + split_rule + "')");
  if (args.has("vocab-size") && vocab != "bpe") args.usage_error("--vocab-size needs --vocab bpe");
  if (args.has("tokenizer-dir") && vocab != "gpt2") args.usage_error("--tokenizer-dir needs --vocab gpt2");
  if (vocab == "gpt2" && !args.has("tokenizer-dir")) args.usage_error("--vocab gpt2 needs --tokenizer-dir DIR");
  const uint32_t bpe_size = static_cast<uint32_t>(args.integer("vocab-size", 257, 1 << 20));
  if (args.has("resume") && args.has("init")) args.usage_error("--resume and --init exclude each other");
  const bool from_file = args.has("resume") || args.has("init");
  const std::string out = args.str("out"), state_path = out + ".state", prev_state_path = out + ".state.prev";
  const std::string csv_path = args.has("csv") ? args.str("csv") : out + ".csv";
  const std::string svg_path = svg_path_for(csv_path);
  // Token files (nanoGPT's train.bin / val.bin) come split and tokenized; the vocabulary is given.
  std::string val_bin;
  for (const auto& d : data_paths)
    if (ends_with(d, ".bin") != token_files) args.usage_error("--data mixes token files (.bin) and text");
  if (token_files) {
    if (data_paths.size() > 1) args.usage_error("token files: one --data TRAIN.bin (and --val-data VAL.bin)");
    if (args.has("split")) args.usage_error("--split is for text; token files come split (train.bin, val.bin)");
    if (!from_file && vocab == "bpe")
      args.usage_error("--vocab bpe learns from text; with token files use --vocab gpt2 or --vocab char --vocab-from TEXT");
    if (!from_file && vocab == "char" && !args.has("vocab-from"))
      args.usage_error("--vocab char with a token file needs --vocab-from TEXT (the ids index its sorted characters)");
    if (args.has("val-data")) val_bin = args.str("val-data");
    else if (base_name(data_paths[0]) == "train.bin") val_bin = data_paths[0].substr(0, data_paths[0].size() - 9) + "val.bin";
    else args.usage_error("--data " + data_paths[0] + " needs --val-data VAL.bin (only train.bin has a default, val.bin beside it)");
  } else if (args.has("val-data")) {
    args.usage_error("--val-data is for token files (--data TRAIN.bin)");
  }
  if (args.has("vocab-from") && (!token_files || vocab != "char" || from_file))
    args.usage_error("--vocab-from is the character vocabulary of a token file: it needs --data TRAIN.bin and --vocab char");
  std::string data_list = token_files ? data_paths[0] + "," + val_bin : data_paths[0];
  for (size_t i = 1; i < data_paths.size(); ++i) data_list += "," + data_paths[i];

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

  // Every file read (--resume reads the outputs themselves: they are outputs only).
  std::vector<std::string> inputs = data_paths;
  if (!val_bin.empty()) inputs.push_back(val_bin);
  for (const char* o : {"vocab-from", "init"})
    if (args.has(o)) inputs.push_back(args.str(o));
  if (args.has("tokenizer-dir"))
    for (const char* f : {"encoder.json", "vocab.bpe", "vocab.json", "merges.txt"}) inputs.push_back(args.str("tokenizer-dir") + "/" + f);
  check_outputs(P, {out, state_path, prev_state_path, csv_path, svg_path}, inputs);
  for (const std::string& p : {out, state_path, prev_state_path, csv_path, svg_path}) ember::remove_stale_temporaries(p);

  // Starting point: fresh, --init, or --resume (then the architecture and vocabulary come from the
  // checkpoint; architecture options that disagree with it are an error).
  ember::ModelSpec start;
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
    if (start.tokenizer.kind() == ember::TokenizerKind::kNone) fail(P, src + " has no tokenizer");
    // The vocabulary is the model's (a BPE is never learned again); options that disagree are an error.
    const bool chars = start.tokenizer.kind() == ember::TokenizerKind::kChars;
    if (args.has("vocab") && (vocab == "char") != chars)
      fail(P, "--vocab " + vocab + " disagrees with " + src + " (" + ember::tokenizer_kind_name(start.tokenizer.kind()) + ")");
    same("vocab-size", bpe_size, static_cast<uint64_t>(start.tokenizer.n_vocab()));
    if (c.n_classes > 0) fail(P, src + " is a classifier (n_classes " + std::to_string(c.n_classes) + "); pretrain needs a language model");
    cfg = c;
  }
  topt.seq_len = cfg.n_ctx;

  // Data: every file split 90/10, the vocabulary, the token streams.
  const ember::TextSplit rule = split_rule == "lines" ? ember::TextSplit::kLines : ember::TextSplit::kChars;
  std::vector<TextFile> files(token_files ? 0 : data_paths.size());
  std::vector<ember::TextPart> parts;
  for (size_t i = 0; i < files.size(); ++i) {
    TextFile& f = files[i];
    f.path = data_paths[i];
    f.text = check(P, ember::read_file(f.path));
    size_t bad = 0;
    if (!ember::is_valid_utf8(f.text, &bad)) fail(P, f.path + ": not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
    const size_t cut = ember::text_split_point(f.text, rule);
    parts.push_back({f.path, std::string_view(f.text).substr(0, cut), std::string_view(f.text).substr(cut)});
  }
  ember::Tokenizer tok;
  std::string vocab_note;
  if (from_file) {
    tok = std::move(start.tokenizer);
  } else if (vocab == "char") {
    std::string all = token_files ? check(P, ember::read_file(args.str("vocab-from"))) : "";
    for (const auto& f : files) all += f.text;
    size_t bad = 0;
    if (token_files && !ember::is_valid_utf8(all, &bad))
      fail(P, args.str("vocab-from") + ": not valid UTF-8 (byte offset " + std::to_string(bad) + ")");
    tok = check(P, ember::Tokenizer::chars(ember::sorted_characters(all)));
  } else if (vocab == "gpt2") {
    const std::string dir = args.str("tokenizer-dir");
    const bool openai = file_exists(dir + "/encoder.json");
    tok = check(P, ember::load_gpt2_tokenizer(dir + (openai ? "/encoder.json" : "/vocab.json"), dir + (openai ? "/vocab.bpe" : "/merges.txt")));
  } else {
    std::vector<std::string_view> texts;
    size_t bytes = 0;
    for (const auto& part : parts) texts.push_back(part.train), bytes += part.train.size();
    ember::BpeTrainOptions bo;
    bo.vocab_size = bpe_size;
    ember::BpeTrainStats bs;
    const double b0 = now_seconds();
    tok = check(P, ember::train_bpe(texts, bo, &bs));
    char buf[256];
    std::snprintf(buf, sizeof buf, "byte-level BPE learned from %.2f MB of train text in %.2f s: %llu pieces (%llu distinct), %llu merges, last merge seen %llu times",
                  bytes / 1e6, now_seconds() - b0, static_cast<unsigned long long>(bs.pieces), static_cast<unsigned long long>(bs.unique_pieces),
                  static_cast<unsigned long long>(bs.merges), static_cast<unsigned long long>(bs.last_count));
    vocab_note = buf;
  }
  if (!from_file) cfg.n_vocab = static_cast<uint32_t>(tok.n_vocab());
  if (!vocab_note.empty()) std::fprintf(stderr, "%s: %s\n", P.c_str(), vocab_note.c_str());
  ember::TokenStreams split;
  if (token_files) {
    split.train = read_token_ids(P, data_paths[0], cfg.n_vocab);
    split.val = read_token_ids(P, val_bin, cfg.n_vocab);
  } else {
    split = check(P, ember::encode_text_parts(tok, parts));
  }
  const size_t T = cfg.n_ctx, B = topt.batch;
  if (split.train.size() < T + 2 || split.val.size() < T + 2)
    fail(P, data_list + ": too short for --block " + std::to_string(T) + " (" + std::to_string(split.train.size()) + " train and " +
                std::to_string(split.val.size()) + " val tokens; each split needs more than the block)");

  std::unique_ptr<ember::Trainer> tr;
  if (from_file) {
    tr = check(P, ember::Trainer::from_spec(start, topt));
    if (args.has("resume")) check(P, ember::load_checkpoint_state(*tr, start, out));
  } else {
    tr = check(P, ember::Trainer::create(cfg, topt));
  }
  const uint64_t first = args.has("resume") ? tr->steps() : 0;
  if (first > iters) fail(P, out + " already has " + std::to_string(first) + " steps (--iters " + std::to_string(iters) + ")");
  if (args.has("resume") && first == iters) {
    // The run finished (a checkpoint writes the curve, the state, then the model; a kill may have
    // come after the last of them, before the old state was removed): nothing is left to do.
    std::remove(prev_state_path.c_str());  // MODEL.state is the model's (found above)
    std::fprintf(stderr, "%s: %s already has all %llu steps: nothing to resume\n", P.c_str(), out.c_str(),
                 static_cast<unsigned long long>(iters));
    return 0;
  }

  // The loss curve so far: a resumed run keeps the rows up to its checkpoint.
  std::vector<ember::LossRow> curve;
  if (args.has("resume")) {
    auto text = ember::read_file(csv_path);
    auto rows = text.ok() ? ember::parse_loss_curve_csv(*text, csv_path) : ember::Result<std::vector<ember::LossRow>>(text.status());
    if (!rows.ok()) {
      std::fprintf(stderr, "%s: warning: %s; the loss curve restarts at step %llu\n", P.c_str(), rows.status().message().c_str(),
                   static_cast<unsigned long long>(first));
    } else {
      for (const auto& r : *rows)
        if (r.eval ? r.iter <= first : r.iter < first) curve.push_back(r);
    }
  }

  const std::string start_note =
      !from_file ? "new model" : args.has("resume") ? "resuming " + out : "continuing from " + args.str("init");
  std::fprintf(stderr, "%s: %s, %s, %s; n_layer %u, n_head %u, n_embd %u, n_ff %u, n_ctx %u, n_vocab %u (%s): %.2fM parameters\n",
               P.c_str(), start_note.c_str(),
               ember::norm_placement_name(cfg.norm), ember::activation_name(cfg.activation), cfg.n_layer, cfg.n_head,
               cfg.n_embd, cfg.n_ff, cfg.n_ctx, cfg.n_vocab, ember::tokenizer_kind_name(tok.kind()), tr->n_params() / 1e6);
  std::fprintf(stderr, "%s: data %s: %zu train / %zu val tokens; batch %zu x %zu x accum %llu; %u threads; %s memory\n",
               P.c_str(), data_list.c_str(), split.train.size(), split.val.size(), B, T,
               static_cast<unsigned long long>(accum), tr->n_threads(), human_bytes(tr->memory_bytes()).c_str());

  ember::PretrainOptions po;
  po.out = out;
  po.resume = args.has("resume");
  po.iters = iters, po.accum = accum, po.schedule = sched, po.adam = adam, po.grad_clip = clip;
  po.eval_every = eval_every, po.eval_iters = eval_iters;
  po.metadata["train.data"] = data_list;
  po.metadata["train.split"] = token_files ? "token files" : split_rule;
  po.metadata["converter"] = "ember-train";

  // Progress: a line every --log-every steps (ms/iter over the interval, the ETA at the run's average),
  // a line per evaluation; the loss curve (CSV, then SVG) is each checkpoint's first files.
  const double t_start = now_seconds();
  double train_seconds = 0.0, eval_seconds = 0.0, last_train = 0.0, last_val = 0.0, window_seconds = 0.0;
  uint64_t timed = 0, evals = 0, window_iters = 0;
  bool have_val = false;
  ember::PretrainCallbacks cb;
  cb.on_eval = [&](const ember::PretrainEval& e) {
    eval_seconds += e.seconds;
    last_train = e.train_loss, last_val = e.val_loss;
    if (e.step < iters) {  // the final evaluation is in the closing line
      ++evals;
      have_val = true;
      std::fprintf(stderr, "step %llu: train loss %.4f, val loss %.4f\n", static_cast<unsigned long long>(e.step), e.train_loss,
                   e.val_loss);
    }
    ember::LossRow r;
    r.iter = e.step, r.eval = true, r.train_loss = e.train_loss, r.val_loss = e.val_loss;
    curve.push_back(r);
    return ember::Status();
  };
  cb.on_step = [&](const ember::PretrainStep& st) {
    train_seconds += st.seconds;
    window_seconds += st.seconds;
    ++timed;
    ++window_iters;
    ember::LossRow r;
    r.iter = st.step - 1, r.lr = st.lr, r.loss = st.loss, r.grad_norm = st.grad_norm, r.ms = st.seconds * 1e3;
    curve.push_back(r);
    if (st.step % log_every == 0 || st.step == iters) {
      const double ms = window_seconds / static_cast<double>(window_iters) * 1e3;
      const double avg_ms = train_seconds / static_cast<double>(timed) * 1e3;
      window_seconds = 0.0;
      window_iters = 0;
      const double left = static_cast<double>(iters - st.step);
      const double evals_left = eval_every ? std::floor(left / static_cast<double>(eval_every)) + 1 : 1;
      const double eval_each = evals ? eval_seconds / static_cast<double>(evals) : 0.0;
      char val[32] = "-";
      if (have_val) std::snprintf(val, sizeof val, "%.4f", last_val);
      std::fprintf(stderr, "iter %llu/%llu | loss %.4f | val %s | lr %.2e | norm %.3f | %.1f ms/iter | %.0f tok/s | ETA %s\n",
                   static_cast<unsigned long long>(st.step), static_cast<unsigned long long>(iters), st.loss, val, st.lr,
                   st.grad_norm, ms, static_cast<double>(B * T * accum) / (ms / 1e3),
                   fmt_time(left * avg_ms / 1e3 + evals_left * eval_each).c_str());
    }
    return ember::Status();
  };
  const std::string title = "ember-train " + base_name(out) + ": n_layer " + std::to_string(cfg.n_layer) + ", n_embd " +
                            std::to_string(cfg.n_embd) + ", n_ctx " + std::to_string(cfg.n_ctx) + ", " +
                            ember::tokenizer_kind_name(tok.kind()) + " vocab " + std::to_string(cfg.n_vocab) + ", seed " +
                            std::to_string(topt.seed);
  cb.on_checkpoint = [&](const ember::PretrainEval&) {
    const std::string c = ember::loss_curve_csv(curve);
    EMBER_RETURN_IF_ERROR(ember::write_file_atomic(csv_path, c.data(), c.size()));
    checkpoint_pause();
    const std::string s = ember::loss_curve_svg(curve, title);
    EMBER_RETURN_IF_ERROR(ember::write_file_atomic(svg_path, s.data(), s.size()));
    checkpoint_pause();
    return ember::Status();
  };
  cb.after_checkpoint_file = checkpoint_pause;
  check(P, ember::pretrain(*tr, tok, split, po, cb));
  std::fprintf(stderr,
               "done: %llu iterations in %s (%.1f ms/iter training, %.1f s evaluating); step %llu: train loss %.4f, "
               "val loss %.4f; wrote %s, %s, %s\n",
               static_cast<unsigned long long>(iters - first), fmt_time(now_seconds() - t_start).c_str(),
               train_seconds / static_cast<double>(timed) * 1e3, eval_seconds, static_cast<unsigned long long>(iters),
               last_train, last_val, out.c_str(), csv_path.c_str(), svg_path.c_str());
  return 0;
}

}  // namespace

// ---- finetune: GPT-1 task fine-tuning (the library's ember::finetune, include/ember/finetune.h) ------------

namespace {

int finetune(const Args& args, const std::string& P) {
  if (!args.has("init")) args.usage_error("finetune needs --init PRETRAINED.ember");
  if (!args.has("data")) args.usage_error("--data is required");
  if (!args.has("out")) args.usage_error("--out is required");
  for (const char* o : {"resume", "n-layer", "n-head", "n-embd", "n-ff", "block", "norm", "act", "untied", "iters", "accum",
                        "min-lr", "warmup", "lr-decay-iters", "eval-every", "eval-iters", "vocab"})
    if (args.has(o)) args.usage_error(std::string("--") + o + " is a pretrain option");
  const std::string out = args.str("out"), data_path = args.str("data"), init = args.str("init");
  const std::string csv_path = args.has("csv") ? args.str("csv") : out + ".csv";
  const std::string svg_path = svg_path_for(csv_path);
  check_outputs(P, {out, csv_path, svg_path}, {init, data_path});
  ember::FinetuneOptions o;
  o.init_name = init;
  o.data_name = data_path;
  o.balanced = args.has("balanced");
  o.eval_split = args.str("eval-split");
  const std::string trunc_opt = args.str("truncate");
  if (trunc_opt != "head" && trunc_opt != "head+tail") args.usage_error("--truncate must be head or head+tail (got '" + trunc_opt + "')");
  o.truncation = trunc_opt == "head" ? ember::Truncation::kHead : ember::Truncation::kHeadTail;
  o.lm_weight = static_cast<float>(args.number("lm-weight", 0.0, 1e6));
  o.epochs = static_cast<uint64_t>(args.integer("epochs", 1, 1 << 20));
  o.warmup_frac = args.number("warmup-frac", 0.0, 1.0);
  o.lr = args.has("lr") ? static_cast<float>(args.number("lr", 0.0, 10.0)) : 6.25e-5f;
  o.batch = args.has("batch") ? static_cast<uint32_t>(args.integer("batch", 1, 1 << 16)) : 8;
  o.adam.beta1 = args.has("beta1") ? static_cast<float>(args.number("beta1", 0.0, 0.999999)) : 0.9f;
  o.adam.beta2 = args.has("beta2") ? static_cast<float>(args.number("beta2", 0.0, 0.999999)) : 0.999f;
  o.adam.weight_decay = args.has("weight-decay") ? static_cast<float>(args.number("weight-decay", 0.0, 10.0)) : 0.01f;
  o.adam.decay_embeddings = args.has("decay-embeddings");
  o.grad_clip = args.number("grad-clip", 0.0, 1e9);
  o.n_threads = static_cast<uint32_t>(args.integer("threads", 1, 1024));
  o.dropout = static_cast<float>(args.number("dropout", 0.0, 0.95));
  o.seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  const uint64_t log_every = static_cast<uint64_t>(args.integer("log-every", 1, int64_t{1} << 40));

  ember::ModelSpec pretrained = check(P, ember::read_model_file(init));
  const std::vector<ember::LabelledText> rows = check(P, ember::read_jsonl_dataset(data_path));

  // Progress: a line every --log-every steps with an ETA, a line per epoch naming each loss, and the loss
  // curve (CSV, then SVG, each atomically) rewritten after every epoch.
  const double t_start = now_seconds();
  ember::FinetunePlan plan;
  std::vector<ember::LossRow> curve;
  double train_seconds = 0.0, window_loss = 0.0, window_seconds = 0.0, eval_seconds = -1.0, acc = -1.0;
  uint64_t window_iters = 0, window_tokens = 0;
  // ETA: the remaining steps at the run's average, plus the evaluations still to come (this epoch's
  // included): measured after the first one, before it estimated as a forward pass (a third of a
  // training step) over the eval rows.
  const auto eta = [&](uint64_t done, uint64_t ep) {
    const double per_step = train_seconds / static_cast<double>(done);
    double rest = static_cast<double>(plan.total_steps - done) * per_step;
    if (plan.eval_rows) {
      const double each = eval_seconds >= 0.0 ? eval_seconds
                                              : per_step / 3.0 * static_cast<double>(plan.eval_rows) / static_cast<double>(o.batch);
      rest += static_cast<double>(o.epochs - ep) * each;
    }
    return rest;
  };
  ember::FinetuneCallbacks cb;
  cb.on_start = [&](const ember::FinetunePlan& p) {
    plan = p;
    const ember::ModelConfig& cfg = p.config;
    std::fprintf(stderr, "%s: fine-tuning %s: %s, n_layer %u, n_embd %u, n_ctx %u, n_vocab %u + 2 (start %d, extract %d): %.2fM parameters\n",
                 P.c_str(), init.c_str(), ember::norm_placement_name(cfg.norm), cfg.n_layer, cfg.n_embd, cfg.n_ctx, p.base_vocab,
                 p.start_id, p.extract_id, p.n_params / 1e6);
    std::fprintf(stderr, "%s: data %s: %zu train rows, %zu %s rows (%zu cut to %zu tokens, %s); %zu classes: %s\n", P.c_str(),
                 data_path.c_str(), p.train_rows, p.eval_rows, o.eval_split.c_str(), p.truncated, p.max_tokens,
                 ember::truncation_name(o.truncation), p.labels.size(), check(P, ember::join_class_labels(p.labels)).c_str());
    if (p.eval_unknown)
      std::fprintf(stderr, "%s: %zu %s rows have labels the train split lacks (counted as wrong)\n", P.c_str(), p.eval_unknown,
                   o.eval_split.c_str());
    std::fprintf(stderr, "%s: %llu epochs x %llu steps of batch %u; lr %.3g, warmup %llu steps, linear decay; lm weight %g; %u threads; %s memory\n",
                 P.c_str(), static_cast<unsigned long long>(o.epochs), static_cast<unsigned long long>(p.steps_per_epoch), o.batch,
                 o.lr, static_cast<unsigned long long>(p.warmup_steps), o.lm_weight, p.n_threads, human_bytes(p.memory_bytes).c_str());
  };
  cb.on_step = [&](const ember::FinetuneStep& st) {
    ember::LossRow row;
    row.iter = st.step, row.lr = st.lr, row.loss = st.loss, row.grad_norm = st.grad_norm, row.ms = st.seconds * 1e3;
    row.class_loss = st.class_loss, row.lm_loss = st.lm_loss;
    curve.push_back(row);
    train_seconds += st.seconds;
    window_seconds += st.seconds;
    window_loss += st.loss;
    window_tokens += st.text_tokens;
    ++window_iters;
    if (st.step % log_every == 0 || st.step == st.total) {
      const double ms = window_seconds / static_cast<double>(window_iters) * 1e3;
      std::fprintf(stderr, "iter %llu/%llu | epoch %llu | loss %.4f | lr %.2e | norm %.3f | %.1f ms/iter | %.0f tok/s | ETA %s\n",
                   static_cast<unsigned long long>(st.step), static_cast<unsigned long long>(st.total),
                   static_cast<unsigned long long>(st.epoch), window_loss / static_cast<double>(window_iters), st.lr, st.grad_norm, ms,
                   static_cast<double>(window_tokens) / window_seconds, fmt_time(eta(st.step, st.epoch - 1)).c_str());
      window_loss = window_seconds = 0.0;
      window_iters = window_tokens = 0;
    }
    return ember::Status();
  };
  cb.on_epoch = [&](const ember::FinetuneEpoch& e) {
    std::string line = "epoch " + std::to_string(e.epoch) + ": train loss " + fmt_number(e.loss, "%.4f");
    if (o.lm_weight > 0)
      line += " (classification " + fmt_number(e.class_loss, "%.4f") + " + " + fmt_number(o.lm_weight) + " x LM " +
              fmt_number(e.lm_loss, "%.4f") + ")";
    else
      line += " (classification)";
    if (e.evaluated) {
      eval_seconds = e.eval_seconds;
      acc = e.eval_accuracy;
      ember::LossRow row;
      row.eval = true, row.iter = e.step, row.val_loss = e.eval_loss, row.val_accuracy = e.eval_accuracy;
      curve.push_back(row);
      line += ", " + o.eval_split + " classification loss " + fmt_number(e.eval_loss, "%.4f") + ", " + o.eval_split + " accuracy " +
              fmt_number(100.0 * e.eval_accuracy, "%.2f") + "% (" + std::to_string(plan.eval_rows) + " rows)";
    }
    std::fprintf(stderr, "%s\n", line.c_str());
    const std::string c = ember::loss_curve_csv(curve, ember::LossCurveKind::kFinetune);
    EMBER_RETURN_IF_ERROR(ember::write_file_atomic(csv_path, c.data(), c.size()));
    const std::string title = "ember-train finetune " + base_name(out) + ": " + base_name(data_path) + ", " +
                              std::to_string(plan.labels.size()) + " classes, lm weight " + fmt_number(o.lm_weight) + ", seed " +
                              std::to_string(o.seed);
    const std::string s = ember::loss_curve_svg(curve, title, ember::LossCurveKind::kFinetune);
    return ember::write_file_atomic(svg_path, s.data(), s.size());
  };

  ember::ModelSpec res = check(P, ember::finetune(std::move(pretrained), rows, o, cb));
  res.metadata["converter"] = "ember-train";
  check(P, ember::write_model_file(res, out));
  std::fprintf(stderr, "done: %llu steps in %s (%.1f ms/step)%s; wrote %s, loss curve %s and %s\n",
               static_cast<unsigned long long>(plan.total_steps), fmt_time(now_seconds() - t_start).c_str(),
               train_seconds / static_cast<double>(plan.total_steps) * 1e3,
               acc >= 0 ? (", " + o.eval_split + " accuracy " + fmt_number(100.0 * acc, "%.2f") + "%").c_str() : "", out.c_str(),
               csv_path.c_str(), svg_path.c_str());
  return 0;
}

}  // namespace
