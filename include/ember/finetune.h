// GPT-1 task fine-tuning (Radford et al. 2018, section 3.2) as a library call: libember_host.
//
//   ember::ModelSpec pre = *ember::read_model_file("models/english.ember");       // f32, f16 or int8
//   auto rows = *ember::read_jsonl_dataset("sms_spam.jsonl");                     // {"text", "label", "split"}
//   ember::FinetuneOptions o;  o.balanced = true;  o.epochs = 2;  o.lr = 3e-4f;  o.n_threads = 2;
//   ember::FinetuneCallbacks cb;
//   cb.on_epoch = [](const ember::FinetuneEpoch& e) { std::printf("%.2f%%\n", 100 * e.eval_accuracy); return ember::Status(); };
//   auto model = ember::finetune(std::move(pre), rows, o, cb);                    // Result<ModelSpec>
//   if (model.ok()) ember::write_model_file(*model, "sms.ember");                 // ember-classify runs it
//
// What it does: two tokens are appended to the vocabulary (start = n_vocab, extract = n_vocab + 1, N(0, 0.02)
// embeddings, outside the tokenizer so no text produces them) and a linear head on the extract token's
// final hidden state (classes: the sorted distinct labels of the train rows, N(0, 0.02) weights, zero
// bias). Each text becomes [start] text [extract] (a text longer than n_ctx - 2 tokens is cut by
// `truncation`). The loss is L3 = L2 + lm_weight * L1: the classification cross-entropy plus the
// language-modelling loss of the text. AdamW, linear warmup over warmup_frac of the steps then linear
// decay to 0, gradient clipping; batches of whole examples padded to the longest, in an order shuffled per
// epoch from the seed. After every epoch the rows of eval_split are classified (accuracy and loss).
// The result is deterministic for a seed at any n_threads.
//
// Errors (Status, the message naming init_name / data_name and the row's line): a model that already has
// a classifier head or has no tokenizer, n_ctx < 3, no train rows, a single label, a label that is not a
// valid class name, a text the tokenizer cannot encode, a non-finite loss, or an error a callback returns.
// Thread safety: one call runs its own trainer and thread pool; calls do not share state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/classify.h"
#include "ember/convert.h"
#include "ember/dataset.h"
#include "ember/export.h"
#include "ember/status.h"
#include "ember/train.h"

namespace ember {

struct FinetuneOptions {
  std::string init_name = "model";    // names the pretrained model in messages and metadata (e.g. its path)
  std::string data_name = "dataset";  // names the dataset likewise
  bool balanced = false;              // train (and evaluate) only rows marked balanced
  std::string eval_split = "val";     // evaluated after every epoch; "" or "none": no evaluation
  Truncation truncation = Truncation::kHeadTail;
  float lm_weight = 0.5f;  // lambda; 0: classification loss only (the LM head is then not run)
  uint64_t epochs = 3;
  uint32_t batch = 8;
  float lr = 6.25e-5f;        // peak learning rate (GPT-1's)
  double warmup_frac = 0.002;  // GPT-1: 0.2% of the steps
  double grad_clip = 1.0;      // global norm; 0: off
  AdamWOptions adam{0.9f, 0.999f, 1e-8f, 0.01f, false};
  uint32_t n_threads = 1;
  float dropout = 0.1f;
  uint64_t seed = 1337;  // new rows and head, dropout masks, example order
};

// What finetune() prepared, before the first step.
struct FinetunePlan {
  ModelConfig config;  // the fine-tuned model's (n_vocab + 2, n_classes)
  uint32_t base_vocab = 0;
  int32_t start_id = 0, extract_id = 0;
  std::vector<std::string> labels;  // class names, sorted; class k is labels[k]
  size_t train_rows = 0, eval_rows = 0;
  size_t truncated = 0;     // train and eval texts cut to max_tokens
  size_t max_tokens = 0;    // n_ctx - 2
  size_t eval_unknown = 0;  // eval rows whose label the train rows lack (counted as wrong)
  uint64_t steps_per_epoch = 0, total_steps = 0, warmup_steps = 0;
  size_t n_params = 0, memory_bytes = 0;
  uint32_t n_threads = 0;  // threads used (n_threads capped at the CPUs)
};

struct FinetuneStep {
  uint64_t step = 0, total = 0, epoch = 0;  // 1-based step and epoch
  float lr = 0.0f, loss = 0.0f;             // loss: L3 of the batch
  double class_loss = 0.0, lm_loss = 0.0;   // its parts L2 and L1 (lm_loss NaN when lm_weight is 0)
  double grad_norm = 0.0;                   // before clipping
  double seconds = 0.0;
  uint64_t text_tokens = 0;  // tokens of the batch's examples, padding excluded
};

struct FinetuneEpoch {
  uint64_t epoch = 0, step = 0;                       // 1-based epoch; steps done
  double loss = 0.0, class_loss = 0.0, lm_loss = 0.0;  // means over the epoch's steps
  bool evaluated = false;                             // eval_split given and non-empty
  double eval_loss = 0.0, eval_accuracy = 0.0;        // classification loss, accuracy 0..1
  double eval_seconds = 0.0;
};

// Each callback may be empty; a non-OK Status from one stops the run and is returned.
struct FinetuneCallbacks {
  std::function<void(const FinetunePlan&)> on_start;
  std::function<Status(const FinetuneStep&)> on_step;
  std::function<Status(const FinetuneEpoch&)> on_epoch;
};

// Fine-tunes `pretrained` on the train rows of `rows`. The returned model (f32) has the classifier head and
// records classifier.labels / start_id / extract_id / truncate (what ember-classify reads) and finetune.*
// (init, data, epochs, lm_weight, the last eval accuracy), besides the pretrained model's metadata.
EMBER_API Result<ModelSpec> finetune(ModelSpec pretrained, const std::vector<LabelledText>& rows,
                                     const FinetuneOptions& options, const FinetuneCallbacks& callbacks = {});

}  // namespace ember
