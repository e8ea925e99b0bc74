// Pretraining as library calls (libember_host): the text data pipeline, the training loop with its
// evaluations, and the kill-safe checkpoint protocol. ember-train pretrain is a command line over these.
//
//   std::string text = ember::read_file("input.txt").value();                       // check ok() first
//   const size_t cut = ember::text_split_point(text, ember::TextSplit::kChars);     // nanoGPT's 90 / 10
//   ember::Tokenizer tok = ember::Tokenizer::chars(ember::sorted_characters(text)).value();
//   auto data = ember::encode_text_parts(tok, {{"input.txt", std::string_view(text).substr(0, cut),
//                                              std::string_view(text).substr(cut)}});
//   ember::ModelConfig c;  ...;  c.n_vocab = tok.n_vocab();
//   ember::TrainOptions to;  to.batch = 12;  to.n_threads = 2;
//   auto tr = ember::Trainer::create(c, to);
//   ember::PretrainOptions o;  o.out = "m.ember";  o.iters = 2000;  o.schedule = {1e-3f, 1e-4f, 100, 2000};
//   ember::Status st = ember::pretrain(**tr, tok, *data, o, {});                     // checkpoints at o.out
//
// Batches: each step draws `batch` windows of seq_len tokens from the train stream, uniformly, as a
// function of (seed, step) only (nanoGPT's get_batch, made reproducible), so a resumed run sees the
// batches an uninterrupted run would. Every eval_every steps (not at a resumed run's first step) and at
// the end, the mean loss over eval_iters batches of each stream is measured (dropout off) and a checkpoint
// is written.
//
// A checkpoint is, in this order, each file atomically: whatever on_checkpoint writes (ember-train: its
// loss curve), the optimizer state at OUT.state (the previous one kept as OUT.state.prev meanwhile), then
// the model at OUT; then OUT.state.prev is removed. Whenever a process is killed, OUT and one of OUT.state
// / OUT.state.prev belong to the same step: load_checkpoint_state() finds it, and pretrain() with
// resume = true then continues to the result of an uninterrupted run, bit for bit.
// Thread safety: the calls share no state; a Trainer belongs to one caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"
#include "ember/tokenizer.h"
#include "ember/train.h"

namespace ember {

// ---- Data -------------------------------------------------------------------------------------------

// How a text is split into train (first 90%) and val (the rest): kChars after floor(0.9 n) characters
// (nanoGPT's rule), kLines from the first '\n' at or after byte floor(0.9 N), which train keeps
// (../shared/data/SPLITS.md's rule). text must be valid UTF-8 for kChars.
enum class TextSplit { kChars, kLines };
EMBER_API const char* text_split_name(TextSplit s);  // "chars", "lines"
// The split point, in bytes.
EMBER_API size_t text_split_point(std::string_view text, TextSplit rule);
// The distinct characters of valid UTF-8 `text`, sorted by code point, as UTF-8 strings: nanoGPT's
// sorted(set(text)), the vocabulary Tokenizer::chars takes.
EMBER_API std::vector<std::string> sorted_characters(std::string_view text);

struct TextPart {
  std::string name;           // for messages, e.g. the file's path
  std::string_view train, val;
};
struct TokenStreams {
  std::vector<int32_t> train, val;
};
// Encodes each part's train and val text with `tok` and joins them in order, with the tokenizer's
// <|endoftext|> between parts when it has one. Fails naming the part when a text does not encode.
EMBER_API Result<TokenStreams> encode_text_parts(const Tokenizer& tok, const std::vector<TextPart>& parts);

// ---- Training ---------------------------------------------------------------------------------------

struct PretrainOptions {
  std::string out;        // the model file of every checkpoint (OUT.state beside it); "" for none
  bool resume = false;    // continue from trainer.steps() (after load_checkpoint_state); else step 0
  uint64_t iters = 2000;  // the step to train to
  uint64_t accum = 1;     // micro-batches per step (gradients summed, each scaled by 1 / accum)
  LrSchedule schedule;    // decay_iters 0: iters
  AdamWOptions adam;
  double grad_clip = 1.0;    // global norm; 0: off
  uint64_t eval_every = 0;   // 0: evaluate (and checkpoint) only at the end
  uint64_t eval_iters = 20;  // batches per stream and evaluation
  std::map<std::string, std::string> metadata;  // added to every checkpoint (e.g. train.data, train.split)
};

struct PretrainStep {
  uint64_t step = 0, iters = 0;  // step: 1-based, the one just taken
  float lr = 0.0f;
  double loss = 0.0, grad_norm = 0.0;  // loss: mean over the micro-batches; norm before clipping
  double seconds = 0.0;
};
struct PretrainEval {
  uint64_t step = 0;  // evaluated before this step (iters at the end)
  double train_loss = 0.0, val_loss = 0.0, seconds = 0.0;
};

// Each may be empty; a non-OK Status from one stops the run and is returned.
struct PretrainCallbacks {
  std::function<Status(const PretrainStep&)> on_step;
  std::function<Status(const PretrainEval&)> on_eval;          // each evaluation, before its checkpoint
  std::function<Status(const PretrainEval&)> on_checkpoint;    // a checkpoint's first files (the protocol above)
  std::function<void()> after_checkpoint_file;                 // after each file of a checkpoint (test hook)
};

// Trains `trainer` on `data` (streams of ids < n_vocab, each longer than seq_len + 1) to options.iters,
// `tok` going into every checkpoint. Fails on data too short for the trainer's seq_len, a resumed
// trainer past iters, a non-finite loss, a failed write (naming the file), or a callback's error.
EMBER_API Status pretrain(Trainer& trainer, const Tokenizer& tok, const TokenStreams& data, const PretrainOptions& options,
                          const PretrainCallbacks& callbacks = {});

// For a run resumed from the model file `out` (already loaded into `trainer` with Trainer::from_spec):
// loads the optimizer state of the model's step (metadata train.steps), from OUT.state or, after a
// kill between a checkpoint's files, OUT.state.prev (then renamed to OUT.state). Fails naming what it
// found when no state matches.
EMBER_API Status load_checkpoint_state(Trainer& trainer, const ModelSpec& model, const std::string& out);

}  // namespace ember
