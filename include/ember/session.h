// ember/session.h - one conversation with a model: KV cache, scratch, forward passes.
//
//   auto s = ember::Session::create(model, {/*n_threads=*/2});
//   ember::Status st = (*s)->prefill(ids.data(), ids.size());   // the prompt
//   while (...) { int32_t next = sampler.sample((*s)->logits(), ...); st = (*s)->decode(next); }
//
// create() sizes everything for n_ctx once (KV cache for n_ctx tokens, scratch for n_batch tokens);
// prefill() and decode() never allocate. Positions are absolute (learned), so when the cache holds
// n_ctx tokens the next call fails with StatusCode::kContextFull; to keep going, reset() and prefill
// a suffix of the history (ember-generate --keep-going does this).
// Thread safety: a Session is not thread-safe: call it from one thread at a time (one per thread).
// Sessions of one Model may run in different threads at once, and each result equals a solo run: on an
// all-int8 model their forward passes (prefill, decode, classify) run concurrently, on a model with
// float linear layers they take turns on the model's compute lock. Callbacks (a LogitsCallback,
// SessionOptions::linear_tap) run on the calling thread, inside that lock when there is one: they must
// not call prefill(), decode() or classify() of any session of the same model (deadlock).
// Memory: the config decides it (n_ctx, n_layer, n_embd, n_batch), not the file size; a hostile file can
// ask for a large KV cache (each dimension is at most 2^20): check memory_bytes() or config() first.
//
// A prompt cache: save the state after a long prompt once, restore it into a fresh session (of the same
// model: another model's state is refused by its fingerprint) and continue without the prefill:
//   std::vector<uint8_t> st = session->save_state().value();      // or save_state_file(path)
//   Status ok = other->restore_state(st.data(), st.size());        // other->logits() as after the prompt
// trim(n) cuts the cache back to its first n tokens (undo the end of a conversation, retry a reply); an
// abort callback (SessionOptions::abort, set_abort_callback) stops a long prefill between micro-batches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ember/export.h"
#include "ember/model.h"
#include "ember/status.h"

namespace ember {

// What SessionOptions::linear_tap sees after each linear layer (calibration, debugging).
struct LinearTap {
  const char* name;  // its weight's tensor name without "h.N." and ".weight": "attn.c_attn", "attn.c_proj",
                     // "mlp.c_fc", "mlp.c_proj"; or "lm_head"
  size_t layer;      // block index; n_layer for lm_head
  const float* x;    // (rows, in) input
  const float* y;    // (rows, out) output
  size_t rows, in, out;
};

// How the KV cache stores keys and values: (n_layer, n_head, n_ctx, head_dim) either as f32, or as
// symmetric int8 rows of head_dim values with one f32 scale per (layer, head, position) (a quarter of
// the bytes, plus 4 bytes per row; the query is quantized too, see src/kernels/attention.h).
enum class KvType { kF32, kInt8 };
EMBER_API const char* kv_type_name(KvType t);                         // "f32", "int8"
EMBER_API Result<KvType> kv_type_from_name(const std::string& name);  // inverse; kInvalidArgument otherwise

// The kernel table sessions of this process run: "avx512", "avxvnni" or "avx2" on x86-64, "neondot" or
// "neon" on AArch64, "ref" otherwise; the environment variable EMBER_KERNELS pins "ref" or another table
// the CPU runs (read once). The SIMD tables give bit-identical logits; "ref" (libm's exp, erf, tanh)
// differs from them in the last bits, so seeded sampling may take another path. For benchmarks, bug
// reports and tests that compare stored outputs.
EMBER_API const char* kernel_table_name();

// The CPUs this process may run on: its affinity mask (taskset, cgroup cpusets), else the online CPUs;
// at least 1. Sessions and trainers cap their threads at it.
EMBER_API size_t available_cpus();

// Asked before each micro-batch of prefill() (every n_batch tokens; decode() is one): true stops the call
// with StatusCode::kAborted. Runs on the calling thread, inside the model's compute lock when it has one
// (see Thread safety above): it may read a flag another thread sets, but must not call into a session.
using AbortCallback = std::function<bool()>;

struct SessionOptions {
  // >= 1. More than the CPUs this process may run on (its affinity mask) is capped to them: the pool's
  // threads spin while they wait, so extra threads only take turns wasting the cores. n_threads()
  // tells the number used.
  uint32_t n_threads = 1;
  bool oversubscribe = false;  // keep n_threads above the CPU count (experiments only)
  uint32_t n_batch = 64;   // tokens per forward micro-batch in prefill (scratch is sized for this)
  // f32 by default: a float model stays exact; int8 saves 3/4 of the cache and is faster at long
  // contexts, at a small accuracy cost (measured in the README's Speed section).
  KvType kv_type = KvType::kF32;
  bool profile = false;    // accumulate time per op (see Session::profile()); off: no timer calls
  std::function<void(const LinearTap&)> linear_tap;  // called after every linear layer when set
  AbortCallback abort;  // when set: asked before each micro-batch (see AbortCallback)
};

struct OpProfile {
  const char* op;   // "embed", "layernorm", "attn.c_attn", "attention", "attn.c_proj", "mlp.c_fc", "act", ...
  double seconds;   // total since create() or reset_profile()
  uint64_t calls;
};

class EMBER_API Session {
 public:
  // Fails with kInvalidArgument for n_threads == 0 or n_batch == 0.
  static Result<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model, const SessionOptions& opts);
  ~Session();

  // Called with (index into the prefill tokens, logits[n_vocab]) for every token when given.
  using LogitsCallback = std::function<void(size_t index, const float* logits)>;

  // Runs `n` tokens at positions n_past()..n_past()+n-1, in micro-batches of n_batch tokens. Fails (and
  // changes nothing) when n == 0, a token is outside [0, n_vocab), or n_past() + n > n_ctx (kContextFull).
  // kAborted when the abort callback returned true before a micro-batch: the micro-batches before it
  // stay in the cache, so n_past() grew by a multiple of n_batch (0 when the first was refused, and then
  // nothing changed); logits() is null when any ran (only a prefill's last micro-batch computes them).
  // prefill() of the remaining tokens continues exactly where the aborted call stopped (same bits as one
  // uninterrupted call); trim() or reset() drops them.
  Status prefill(const int32_t* tokens, size_t n, const LogitsCallback* each = nullptr);
  Status decode(int32_t token) { return prefill(&token, 1); }

  // Logits (n_vocab floats) of the last token processed; valid until the next call. Null before the
  // first prefill, after reset(), after a trim() that removed tokens and after an aborted prefill.
  const float* logits() const;
  // Final hidden state (after the final LN for pre-LN models) of the last token, n_embd floats.
  const float* hidden() const;
  // The task classifier on the last token's final hidden state: writes softmax probabilities
  // (n_classes floats) to `probs`. Fails when the model has no classifier or nothing was run yet.
  Status classify(float* probs);
  size_t n_past() const;
  uint32_t n_threads() const;  // threads used: SessionOptions::n_threads, capped at the CPUs
  size_t n_ctx() const;
  size_t n_vocab() const;
  void reset();  // empties the KV cache
  // Cuts the cache back to its first n tokens: the next prefill() or decode() continues at position n and
  // computes exactly what a fresh session given those n tokens would (same bits). n == n_past() changes
  // nothing; otherwise logits() is null until the next call. kInvalidArgument when n > n_past().
  Status trim(size_t n);
  // The n_past() token ids in the cache, in order (what was prefilled and decoded, or restored).
  const int32_t* tokens() const;
  // Replaces SessionOptions::abort (an empty function removes it).
  void set_abort_callback(AbortCallback abort);
  const AbortCallback& abort_callback() const;

  // Session state (a prompt cache): the cached tokens, their keys and values (as the session stores them,
  // f32 or int8), the last logits and hidden state, bound to this session's model by its fingerprint().
  // Format (docs/library.md): a header with a magic, version 1, the model's fingerprint, size and name,
  // the dimensions, the KV type and n_past, its own XXH64 checksum and the payload's.
  // state_size(): the bytes save_state() writes now (grows with n_past). save_state(dst, ...) writes them
  // to the caller's buffer without allocating (kInvalidArgument naming both sizes when `capacity` is too
  // small; *written = the bytes written, or the bytes needed); the other form returns a new buffer.
  size_t state_size() const;
  Status save_state(void* dst, size_t capacity, size_t* written) const;
  Result<std::vector<uint8_t>> save_state() const;
  // Restores a state made by save_state() of a session of the same model (same fingerprint) and KV type;
  // n_threads and n_batch may differ. The bytes are hostile until checked: every size, the version, both
  // checksums, the dimensions, n_past <= n_ctx, every token id and int8 value are verified before the
  // session changes; any failure leaves it as it was. Errors: kInvalidFile (not a state, truncated,
  // corrupted, inconsistent), kUnsupported (another version), kInvalidArgument (another model, naming
  // both and their fingerprints; another KV type). Afterwards logits(), tokens() and n_past() are those
  // of the saved session, and the next decode() gives the same bits it would have given there.
  Status restore_state(const void* data, size_t size);
  // The same through a file: written to PATH.tmp.<pid> and renamed over PATH (a reader never sees half a
  // state); read with ember::read_file (regular files only, at most the largest state of this session).
  Status save_state_file(const std::string& path) const;
  Status restore_state_file(const std::string& path);
  // Bytes this session owns (KV cache + scratch), excluding the model. The KV cache is sized for n_ctx
  // but zero-filled by calloc, so its pages are committed (counted in RSS) only as positions fill.
  size_t memory_bytes() const;
  size_t kv_cache_bytes() const;  // the KV cache's part of memory_bytes()
  KvType kv_type() const;
  const Model& model() const;
  // Per-op times when SessionOptions::profile was set (empty otherwise).
  std::vector<OpProfile> profile() const;
  void reset_profile();

 private:
  Session();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PerplexityResult {
  size_t n_tokens = 0;  // predicted tokens
  double mean_nll = 0;  // natural log
  double ppl = 0;       // exp(mean_nll)
};

// Non-overlapping windows of `ctx` tokens (the last may be shorter); in each window every token after
// the first is predicted from the window's earlier tokens; mean NLL over all predicted tokens.
// `progress(done_tokens, total)` is called after each window when given.
EMBER_API Result<PerplexityResult> compute_perplexity(Session& session, const std::vector<int32_t>& tokens, size_t ctx,
                                                      const std::function<void(size_t, size_t)>& progress = nullptr);

}  // namespace ember
