// ember/train.h - host side: train a GPT (GPT-1 post-LN or GPT-2 pre-LN) in float on ember's own ops.
//
//   ember::ModelConfig c;  c.n_vocab = 65; c.n_ctx = 64; c.n_embd = 128; c.n_head = 4; c.n_layer = 4;
//   c.n_ff = 512;  c.activation = ember::Activation::kGeluErf;
//   ember::TrainOptions o;  o.batch = 12; o.seq_len = 64; o.n_threads = 2;
//   auto tr = ember::Trainer::create(c, o);                  // nanoGPT / GPT-2 initialisation
//   ember::AdamWOptions adam;  adam.beta2 = 0.99f; adam.weight_decay = 0.1f;
//   for (uint64_t it = 0; it < iters; ++it) {
//     (*tr)->zero_grad();
//     for (int a = 0; a < accum; ++a) {                      // gradient accumulation
//       ember::Result<float> loss = (*tr)->forward(x, y);    // x, y: (batch, seq_len) token ids
//       ember::Status st = (*tr)->backward(1.0f / accum);
//     }
//     (*tr)->clip_grad_norm(1.0);
//     (*tr)->step(ember::learning_rate(schedule, it), adam);
//   }
//   ember::ModelSpec spec = (*tr)->to_spec();  spec.tokenizer = ...;  ember::write_model_file(spec, "m.ember");
//
// The model is the one the runtime runs (src/session): canonical tensors of required_tensors(config),
// weights [out, in], tied or untied LM head without bias. Parameters, gradients and the two AdamW moments
// live in one block each, in required_tensors order; activations for (batch, seq_len) are allocated once
// at create(), so forward / backward / step never allocate. Every op is a forward/backward pair
// (src/train/ops.h) checked by finite differences and against PyTorch (tests/train).
// GPT-1 fine-tuning: forward_classify() adds the classifier head's loss (L3 = L2 + lambda * L1).
// Threads: a micro-batch is split into TrainOptions::shards groups of sequences that run concurrently,
// each on one thread (a handful of barriers per step, which matters on a CPU shared with other work).
// Determinism: initialisation and dropout masks derive from `seed` alone (dropout from a counter-based
// hash of (seed, forward count, site, index)); every reduction runs in a fixed order, so results are
// bitwise identical for any n_threads (given `shards`), and a run resumed from to_spec() + save_state()
// continues exactly.
// Thread safety: a Trainer is not thread-safe; it runs its own thread pool of n_threads.
// Part of libember_host; never prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/config.h"
#include "ember/convert.h"
#include "ember/export.h"
#include "ember/status.h"

namespace ember {

struct TrainOptions {
  uint32_t batch = 1;      // B: sequences per micro-batch (activations are sized for it)
  uint32_t seq_len = 0;    // T: tokens per sequence, <= n_ctx; 0 means n_ctx
  uint32_t n_threads = 1;  // >= 1; capped at the CPUs this process may run on, as SessionOptions says
  bool oversubscribe = false;  // keep n_threads above the CPU count (experiments only)
  float dropout = 0.0f;    // nanoGPT's sites: embeddings, attention probabilities, both residual branches
  uint64_t seed = 1337;    // weight initialisation (create) and dropout masks
  // Data parallelism: a micro-batch is split into min(shards, B) groups of whole sequences that run
  // concurrently, each single-threaded (with one group, the ops themselves use the threads). Results
  // depend on `shards` (the order gradients are summed in), never on n_threads. 0 means 4.
  uint32_t shards = 0;
};

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;      // decoupled (AdamW); only on linear-layer weights (attn, mlp, lm_head, cls)
  bool decay_embeddings = false;  // also decay wte and wpe (nanoGPT decays every 2-D tensor)
};

// nanoGPT's get_lr: linear warmup lr * (it + 1) / (warmup + 1) for it < warmup, then cosine from lr down
// to min_lr at decay_iters, then min_lr.
struct LrSchedule {
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  uint64_t warmup = 0;
  uint64_t decay_iters = 0;  // 0: constant lr after warmup
};
EMBER_API float learning_rate(const LrSchedule& s, uint64_t it);

// One parameter tensor in the flat blocks.
struct ParamInfo {
  std::string name;  // canonical, as required_tensors()
  std::vector<uint64_t> shape;
  size_t offset;     // in floats, into params() / grads()
  size_t size;       // elements
  bool is_weight;    // a linear layer's weight (weight-decay candidate)
  bool is_embedding; // wte or wpe
};

class EMBER_API Trainer {
 public:
  // Fresh model, GPT-2 / nanoGPT initialisation: weights and embeddings N(0, 0.02), the residual
  // projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)), biases 0, LN gains 1 and
  // biases 0. Fails (kInvalidArgument) on an invalid config, batch 0, seq_len > n_ctx, n_threads 0,
  // dropout outside [0, 1); kInternal when the memory cannot be allocated.
  static Result<std::unique_ptr<Trainer>> create(const ModelConfig& config, const TrainOptions& opts);
  // Starts from trained weights (e.g. import_model("m.ember")): f16 / int8 tensors are expanded to f32.
  // Fails when the spec does not validate, plus the create() failures.
  static Result<std::unique_ptr<Trainer>> from_spec(const ModelSpec& spec, const TrainOptions& opts);
  ~Trainer();

  // Forward pass over B x T tokens, row-major (b, t), B <= batch, T <= seq_len. targets: the next token
  // for each position (same shape), or nullptr for logits only; negative targets are ignored (PyTorch's
  // ignore_index). Returns the mean cross-entropy over the counted targets (0 when there are none).
  // Fails (kInvalidArgument) on sizes out of range or ids outside [0, n_vocab).
  Result<float> forward(const int32_t* tokens, const int32_t* targets, size_t B, size_t T);
  Result<float> forward(const int32_t* tokens, const int32_t* targets) {
    return forward(tokens, targets, options().batch, options().seq_len);
  }
  // GPT-1 task fine-tuning (needs config n_classes > 0): the classifier head (cls.weight, cls.bias) reads
  // the final hidden state (after ln_f for pre-LN) at position last[b] of each sequence b, and
  //   loss = mean cross-entropy of the class logits vs labels (B)  +  lm_weight * LM loss (L3 = L2 + lambda L1)
  // lm_targets may be nullptr (classification only; the LM head is then skipped); negative labels and
  // targets are ignored. backward() then backpropagates this loss. Fails without a classifier head, for
  // last[b] outside [0, T) or labels >= n_classes, plus forward()'s failures.
  Result<float> forward_classify(const int32_t* tokens, const int32_t* lm_targets, const int32_t* labels,
                                 const int32_t* last, size_t B, size_t T, float lm_weight);
  const float* class_logits() const;  // (B, n_classes) of the last forward_classify
  // The two parts of the last forward_classify's loss, before weighting: the classification loss L2 and
  // the LM loss L1 (NaN when it had no lm_targets, or none counted).
  struct ClassifyLoss {
    double classification = 0.0, lm = 0.0;
  };
  ClassifyLoss last_classify_loss() const;
  // Adds the gradient of loss_scale * (mean loss of the last forward) into grads(): use 1 / accum
  // when accumulating over micro-batches. Fails if the last forward had no targets or was already
  // backpropagated.
  Status backward(float loss_scale = 1.0f);
  void zero_grad();
  // Global L2 norm of all gradients (double accumulation, fixed order).
  double grad_norm() const;
  // PyTorch's clip_grad_norm_: if norm > max_norm, scales every gradient by max_norm / (norm + 1e-6).
  // Returns the norm before clipping. max_norm <= 0 only measures.
  double clip_grad_norm(double max_norm);
  // One AdamW step at learning rate lr (PyTorch torch.optim.AdamW semantics: decoupled decay
  // p -= lr * wd * p, then bias-corrected moments). Increments steps(). Does not clear gradients.
  void step(float lr, const AdamWOptions& opt);

  // Dropout is applied only in training mode (the default); evaluation turns it off.
  void set_training(bool on);
  bool training() const;

  const float* logits() const;  // (B, T, n_vocab) of the last forward
  const float* hidden() const;  // (B, T, n_embd) final hidden states of the last forward (after ln_f)
  const ModelConfig& config() const;
  const TrainOptions& options() const;  // seq_len resolved (never 0)
  const std::vector<ParamInfo>& param_info() const;
  size_t n_params() const;
  float* params();
  const float* params() const;
  float* grads();
  const float* grads() const;
  float* param(const std::string& name);  // nullptr if there is no such tensor
  float* grad(const std::string& name);
  uint64_t steps() const;               // AdamW steps taken (or restored by load_state)
  size_t memory_bytes() const;          // parameters, gradients, moments, activations, scratch
  uint32_t n_threads() const;           // threads used: TrainOptions::n_threads, capped at the CPUs

  // f32 ModelSpec of the current parameters (required_tensors order), metadata "trainer" and
  // "train.steps"; the tokenizer is left empty (kNone) for the caller to set.
  ModelSpec to_spec() const;
  // Optimizer state next to a checkpoint: AdamW moments, step count and dropout counter, written
  // atomically. load_state fails (kInvalidFile) when the file is damaged or belongs to another model
  // shape, and then changes nothing.
  Status save_state(const std::string& path) const;
  Status load_state(const std::string& path);

 private:
  Trainer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};


// ---- The loss curve: ember-train's CSV and its SVG drawing ----------------------------------------

// One row of the curve: a training step (lr, loss, grad_norm, ms) or an evaluation (train_loss and
// val_loss, the mean loss over evaluation batches of each split, before step `iter`).
// What a loss curve records. Pretraining: the loss of each step; at each evaluation the mean train and
// val loss. Fine-tuning: the loss of each step (L3 = L2 + lambda L1) and its two parts, the
// classification loss L2 and the LM loss L1; at the end of each epoch the eval split's classification
// loss and accuracy.
enum class LossCurveKind : uint8_t { kPretrain = 0, kFinetune = 1 };

struct LossRow {
  uint64_t iter = 0;
  bool eval = false;
  double lr = 0.0, loss = 0.0, grad_norm = 0.0, ms = 0.0;  // step rows
  double train_loss = 0.0, val_loss = 0.0;                 // evaluation rows (fine-tuning: val_loss only)
  double class_loss = 0.0, lm_loss = 0.0;                  // fine-tuning step rows (lm_loss NaN: none)
  double val_accuracy = 0.0;                               // fine-tuning evaluation rows, 0..1
};
// CSV. Pretraining: the header "iter,lr,loss,grad_norm,ms,train_loss,val_loss"; a step row leaves the
// last two fields empty, an evaluation row the middle four. Fine-tuning: the header
// "iter,lr,loss,class_loss,lm_loss,grad_norm,ms,val_loss,val_accuracy" (val_loss: classification), step
// rows leave the last two empty (and lm_loss when it is NaN), evaluation rows the middle six. Formats: lr
// %.6g, losses and accuracy %.6f, grad_norm %.5f, ms %.3f (so parse + format reproduces a file's text).
EMBER_API std::string loss_curve_csv(const std::vector<LossRow>& rows, LossCurveKind kind = LossCurveKind::kPretrain);
EMBER_API std::string loss_curve_csv_row(const LossRow& row, LossCurveKind kind = LossCurveKind::kPretrain);  // with its '\n'
// Parses such a CSV, either kind (the header says which; stored in *kind when given); fails
// (kInvalidFile) naming `name` and the line on a wrong header, a wrong field count or a field that is
// not a number.
EMBER_API Result<std::vector<LossRow>> parse_loss_curve_csv(std::string_view text, const std::string& name,
                                                            LossCurveKind* kind = nullptr);
// A self-contained SVG 1.1 document (no scripts, fonts or external references): the per-step losses as
// thin lines (averaged into at most 2000 points when there are more steps), the evaluation losses as
// lines with a marker per evaluation, axes with ticks and labels, a legend and `title` (XML-escaped).
// Elements carry ids. Pretraining: polyline#step-loss, polyline#eval-train, polyline#eval-val, and circles
// of class "eval-train" / "eval-val", one per evaluation row, in row order. Fine-tuning:
// polyline#step-class-loss, polyline#step-lm-loss (when any step has an LM loss), polyline#eval-val and
// circles of class "eval-val" (their titles give the accuracy).
EMBER_API std::string loss_curve_svg(const std::vector<LossRow>& rows, const std::string& title,
                                     LossCurveKind kind = LossCurveKind::kPretrain);

}  // namespace ember
