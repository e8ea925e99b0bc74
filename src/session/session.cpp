#include "ember/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/buffer.h"
#include "core/file_io.h"
#include "core/threadpool.h"
#include "core/visibility.h"
#include "format/q4.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "model/block.h"
#include "model/model_impl.h"
#include "session/state.h"

namespace ember {

namespace {
constexpr size_t kLogitRows = 8;  // LM-head rows computed at once when every token's logits are wanted

enum Op { kEmbed, kLayerNorm, kQkv, kAttention, kAttnProj, kMlpFc, kAct, kMlpProj, kResidual, kLmHead, kNumOps };
// The linear layers by their tensors' names (model/layer_tensors.h), as taps report them.
const char* const kOpNames[kNumOps] = {"embed",    "layernorm", "attn.c_attn", "attention", "attn.c_proj",
                                       "mlp.c_fc", "act",       "mlp.c_proj",  "residual",  "lm_head"};

struct Profiler {
  bool on = false;
  double seconds[kNumOps] = {};
  uint64_t calls[kNumOps] = {};
};

// Times a scope into the profiler when profiling is on; otherwise costs one branch.
class OpTimer {
 public:
  OpTimer(Profiler& p, Op op) : p_(p), op_(op) {
    if (p_.on) t0_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (!p_.on) return;
    p_.seconds[op_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    p_.calls[op_] += 1;
  }

 private:
  Profiler& p_;
  Op op_;
  std::chrono::steady_clock::time_point t0_;
};
}  // namespace

struct EMBER_HIDDEN Session::Impl {
  std::shared_ptr<const Model> model;
  const ModelImpl* M = nullptr;
  const Kernels* K = nullptr;
  std::unique_ptr<ThreadPool> pool;
  size_t n_batch = 0, n_past = 0;
  size_t C = 0, H = 0, D = 0, F = 0, V = 0, T = 0, L = 0;
  // KV cache, per layer and head contiguous over positions: (n_layer, n_head, n_ctx, head_dim), f32 or
  // int8 rows with one scale per row (n_layer, n_head, n_ctx); only the buffers of kv_type are allocated.
  KvType kv_type = KvType::kF32;
  ZeroBuffer<float> k_cache, v_cache;
  ZeroBuffer<int8_t> k_q8, v_q8;
  ZeroBuffer<float> k_scale, v_scale;
  std::vector<int8_t> q8;  // int8 cache: each (token, head)'s quantized query (n_batch, n_embd)
  // Scratch for one micro-batch of B <= n_batch tokens.
  std::vector<float> x, xn, qkv, att, tmp, ff, scores, logits, hidden;
  std::vector<int8_t> xq;  // int8 linear layers: activations quantized per token (n_batch, widest input)
  std::vector<float> xs;   // and their scales (n_batch)
  std::vector<int32_t> xg;  // int4 linear layers: their group sums (n_batch, widest input / 32)
  QuantScratch scratch() { return {xq.data(), xs.data(), xg.data()}; }
  const float* last_logits = nullptr;
  std::vector<int32_t> tokens;  // (n_ctx) the ids at positions 0..n_past-1
  bool has_hidden = false;      // `hidden` holds the state of the token at n_past - 1
  Profiler prof;
  std::function<void(const LinearTap&)> tap;
  AbortCallback abort;

  StateView state_view() const;

  Status forward(const int32_t* tok, size_t B, bool want_logits, const LogitsCallback* each, size_t index0);
  void attention(size_t layer, size_t B);
  struct AttentionTask {
    Impl* s;
    size_t layer, B;
  };
  static constexpr size_t kAttentionQueries = 8;        // queries of one head per task
  static void attention_block(AttentionTask* task, size_t h, size_t blk);
};

void Session::Impl::attention_block(AttentionTask* task, size_t h, size_t blk) {
  Impl& s = *task->s;
  const size_t D = s.D, C = s.C, T = s.T, H = s.H;
  const size_t t0 = blk * kAttentionQueries, t1 = std::min(t0 + kAttentionQueries, task->B);
  const size_t row0 = (task->layer * H + h) * T;  // first cache row of this layer and head
  if (s.kv_type == KvType::kInt8) {
    for (size_t t = t0; t < t1; ++t) {
      const size_t n = s.n_past + t + 1;  // this query sees positions 0..n_past+t
      attention_q8(*s.K, AttentionQ8Args{s.qkv.data() + t * 3 * C + h * D, s.q8.data() + t * C + h * D, s.k_q8.data() + row0 * D,
                                         s.k_scale.data() + row0, s.v_q8.data() + row0 * D, s.v_scale.data() + row0, n, D,
                                         s.scores.data() + (t * H + h) * T, s.att.data() + t * C + h * D});
    }
  } else {
    attention_f32_queries(*s.K, AttentionF32Queries{s.qkv.data() + t0 * 3 * C + h * D, 3 * C, s.k_cache.data() + row0 * D,
                                                    s.v_cache.data() + row0 * D, s.n_past + t0 + 1, t1 - t0, D,
                                                    s.scores.data() + (t0 * H + h) * T, H * T, s.att.data() + t0 * C + h * D, C,
                                                    attention_chunk_rows(D)});
  }
}

namespace {

void layernorm_rows(const Kernels& K, const float* x, const float* g, const float* b, float* y, size_t rows, size_t n,
                    float eps) {
  for (size_t r = 0; r < rows; ++r) K.layernorm_f32(x + r * n, g, b, y + r * n, n, eps);
}

}  // namespace

void Session::Impl::attention(size_t layer, size_t B) {
  // Append this batch's keys and values to the cache (int8: each row quantized with its own scale), then
  // attend causally.
  for (size_t t = 0; t < B; ++t)
    for (size_t h = 0; h < H; ++h) {
      const size_t row = (layer * H + h) * T + n_past + t;
      const float* k = &qkv[t * 3 * C + C + h * D];
      const float* v = &qkv[t * 3 * C + 2 * C + h * D];
      if (kv_type == KvType::kInt8) {
        K->quantize_rows_q8(k, 1, D, &k_q8[row * D], &k_scale[row]);
        K->quantize_rows_q8(v, 1, D, &v_q8[row * D], &v_scale[row]);
      } else {
        std::memcpy(&k_cache[row * D], k, D * sizeof(float));
        std::memcpy(&v_cache[row * D], v, D * sizeof(float));
      }
    }
  // Head-major order: a thread takes consecutive blocks of queries of one head, so that head's cached
  // keys and values (2 n_ctx d floats) stay in its L2 between blocks instead of every head's passing
  // through; within a block (f32 cache) each L1-sized chunk of them serves all the block's queries.
  AttentionTask task{this, layer, B};
  parallel_for_2d(pool.get(), H, (B + kAttentionQueries - 1) / kAttentionQueries,
                  [&](size_t h, size_t blk) { attention_block(&task, h, blk); });
}

Status Session::Impl::forward(const int32_t* tok, size_t B, bool want_logits, const LogitsCallback* each,
                              size_t index0) {
  const ModelConfig& c = M->config;
  ThreadPool* tp = pool.get();
  {
    OpTimer timer(prof, kEmbed);
    for (size_t t = 0; t < B; ++t) {
      const size_t id = static_cast<size_t>(tok[t]);
      const float* p = M->wpe + (n_past + t) * C;
      float* row = x.data() + t * C;
      if (M->wte_q8) {
        const int8_t* q = M->wte_q8 + id * C;
        const float s = M->wte_scales[id];
        for (size_t i = 0; i < C; ++i) row[i] = s * q[i] + p[i];
      } else if (M->wte_q4) {
        q4_dequantize_row(M->wte_q4, V, C, M->wte_group, id, row);
        for (size_t i = 0; i < C; ++i) row[i] += p[i];
      } else {
        const float* e = M->wte + id * C;
        for (size_t i = 0; i < C; ++i) row[i] = e[i] + p[i];
      }
    }
  }
  void (*act)(float*, size_t) = c.activation == Activation::kGeluTanh  ? K->gelu_tanh_f32
                                : c.activation == Activation::kGeluErf ? K->gelu_erf_f32
                                                                       : K->relu_f32;
  const bool pre = c.norm == NormPlacement::kPreLN;
  const float eps = c.norm_eps;
  auto norm_rows = [&](const float* in, const float* g, const float* b, float* out, size_t rows) {
    OpTimer timer(prof, kLayerNorm);
    layernorm_rows(*K, in, g, b, out, rows, C, eps);
  };
  // The block's steps (model/block.h) on the session's scratch: the residual stream stays in x (res2
  // and ln2 overwrite it, x being read last by the residual add before them), res1 is tmp, both layer
  // norms write xn except post-LN's ln_2, which normalizes x in place; the activation runs in place on ff.
  struct Ops {
    Impl& s;
    const LayerWeights* W;
    size_t layer, B;
    void (*act)(float*, size_t);
    decltype(norm_rows)& ln;
    void layernorm(BlockNorm which, const float* in, float* out) {
      ln(in, W->norm_g[static_cast<int>(which)], W->norm_b[static_cast<int>(which)], out, B);
    }
    Status linear(BlockLinear which, const float* in, float* out) {
      static const Op kOps[] = {kQkv, kAttnProj, kMlpFc, kMlpProj};  // by BlockLinear
      const Op op = kOps[static_cast<int>(which)];
      const Linear& lin = W->lin(which);
      Status st;
      {
        OpTimer timer(s.prof, op);
        st = lin.run(B, in, out, s.pool.get(), *s.K, s.scratch());
      }
      if (s.tap && st.ok()) s.tap(LinearTap{kOpNames[op], layer, in, out, B, lin.in, lin.out});
      return st;
    }
    Status attention(const float*, float*) {  // reads s.qkv, writes s.att (the buffers given)
      OpTimer timer(s.prof, kAttention);
      s.attention(layer, B);
      return Status::Ok();
    }
    void activation(const float* in, float* out) {
      OpTimer timer(s.prof, kAct);
      if (out != in) std::memcpy(out, in, B * s.F * sizeof(float));
      act(out, B * s.F);
    }
    void dropout(BlockDropout, float*) {}
    void add(const float* x, float* y) {
      OpTimer timer(s.prof, kResidual);
      s.K->add_f32(x, y, B * s.C);
    }
  };
  for (size_t l = 0; l < L; ++l) {
    Ops ops{*this, &M->layers[l], l, B, act, norm_rows};
    float* xb = x.data();  // the block's input and output
    EMBER_RETURN_IF_ERROR(block_forward(
        ops, pre, BlockBuffers{xb, xn.data(), qkv.data(), att.data(), tmp.data(), pre ? xn.data() : xb, ff.data(), ff.data(), xb}));
  }
  // Heads read the final hidden states: after ln_f (pre-LN) or the last block's LN (post-LN).
  const float* hs = x.data();
  if (pre) {
    const size_t first = (each != nullptr) ? 0 : B - 1;  // only the rows the heads will read
    norm_rows(x.data() + first * C, M->ln_f_g, M->ln_f_b, xn.data() + first * C, B - first);
    hs = xn.data();
  }
  std::memcpy(hidden.data(), hs + (B - 1) * C, C * sizeof(float));
  has_hidden = true;
  OpTimer timer(prof, kLmHead);
  if (each) {
    for (size_t r = 0; r < B; r += kLogitRows) {
      const size_t k = B - r < kLogitRows ? B - r : kLogitRows;
      EMBER_RETURN_IF_ERROR(M->lm_head.run(k, hs + r * C, logits.data(), tp, *K, scratch()));
      if (tap) tap(LinearTap{kOpNames[kLmHead], L, hs + r * C, logits.data(), k, C, V});
      for (size_t i = 0; i < k; ++i) (*each)(index0 + r + i, logits.data() + i * V);
      last_logits = logits.data() + (k - 1) * V;
    }
  } else if (want_logits) {
    EMBER_RETURN_IF_ERROR(M->lm_head.run(1, hs + (B - 1) * C, logits.data(), tp, *K, scratch()));
    if (tap) tap(LinearTap{kOpNames[kLmHead], L, hs + (B - 1) * C, logits.data(), 1, C, V});
    last_logits = logits.data();
  }
  std::memcpy(tokens.data() + n_past, tok, B * sizeof(int32_t));
  n_past += B;
  return Status::Ok();
}

Session::Session() : impl_(new Impl()) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model, const SessionOptions& opts) {
  if (!model) return invalid_argument("session: model is null");
  if (opts.n_threads == 0) return invalid_argument("session: n_threads must be at least 1 (got 0)");
  if (opts.n_threads > 1024) return invalid_argument("session: n_threads " + std::to_string(opts.n_threads) + " is too many");
  if (opts.n_batch == 0) return invalid_argument("session: n_batch must be at least 1 (got 0)");
  if (opts.kv_type != KvType::kF32 && opts.kv_type != KvType::kInt8)
    return invalid_argument("session: unknown KV cache type " + std::to_string(static_cast<int>(opts.kv_type)));
  std::unique_ptr<Session> s(new Session());
  Impl& I = *s->impl_;
  I.model = std::move(model);
  I.M = &model_impl(*I.model);
  I.K = &kernels();
  const ModelConfig& c = I.M->config;
  I.C = c.n_embd;
  I.H = c.n_head;
  I.D = c.n_embd / c.n_head;
  I.F = c.n_ff;
  I.V = c.n_vocab;
  I.T = c.n_ctx;
  I.L = c.n_layer;
  I.n_batch = opts.n_batch < c.n_ctx ? opts.n_batch : c.n_ctx;
  const size_t B = I.n_batch;
  I.pool.reset(new ThreadPool(opts.n_threads, opts.oversubscribe));
  I.kv_type = opts.kv_type;
  const size_t kv_rows = I.L * I.H * I.T;
  if (I.kv_type == KvType::kInt8) {
    EMBER_RETURN_IF_ERROR(I.k_q8.allocate(kv_rows * I.D, "the KV cache"));
    EMBER_RETURN_IF_ERROR(I.v_q8.allocate(kv_rows * I.D, "the KV cache"));
    EMBER_RETURN_IF_ERROR(I.k_scale.allocate(kv_rows, "the KV cache scales"));
    EMBER_RETURN_IF_ERROR(I.v_scale.allocate(kv_rows, "the KV cache scales"));
  } else {
    EMBER_RETURN_IF_ERROR(I.k_cache.allocate(kv_rows * I.D, "the KV cache"));
    EMBER_RETURN_IF_ERROR(I.v_cache.allocate(kv_rows * I.D, "the KV cache"));
  }
  // The config, not the file size, decides these sizes (scores: n_batch x n_head x n_ctx floats), and a
  // hostile model file can ask for more than the machine has: an error, never an exception.
  try {
    I.x.resize(B * I.C);
    I.xn.resize(B * I.C);
    I.qkv.resize(B * 3 * I.C);
    I.att.resize(B * I.C);
    I.tmp.resize(B * I.C);
    I.ff.resize(B * I.F);
    I.scores.resize(B * I.H * I.T);
    I.logits.resize(kLogitRows * I.V);
    I.hidden.resize(I.C);
    I.tokens.resize(I.T);
    I.xq.resize(B * I.M->max_linear_in);
    I.xs.resize(B);
    I.xg.resize(B * I.M->max_linear_in / kQ4GroupMultiple);
    if (I.kv_type == KvType::kInt8) I.q8.resize(B * I.C);
  } catch (const std::bad_alloc&) {
    return internal_error("session: out of memory allocating the scratch for n_batch " + std::to_string(B) + ", n_head " +
                          std::to_string(I.H) + ", n_ctx " + std::to_string(I.T) + " (" + I.model->path() + ")");
  }
  I.prof.on = opts.profile;
  I.tap = opts.linear_tap;
  I.abort = opts.abort;
  return s;
}

Status Session::prefill(const int32_t* tokens, size_t n, const LogitsCallback* each) {
  Impl& I = *impl_;
  if (n == 0) return invalid_argument("prefill: no tokens (empty prompt)");
  if (n > I.T - I.n_past)
    return Status(StatusCode::kContextFull, "context is full: " + std::to_string(I.n_past) + " tokens cached + " +
                                                std::to_string(n) + " new > n_ctx " + std::to_string(I.T));
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= I.V)
      return invalid_argument("token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(I.V) + ")");
  const std::unique_lock<std::mutex> lock = I.M->compute_lock();
  for (size_t i = 0; i < n; i += I.n_batch) {
    if (I.abort && I.abort()) {
      if (i > 0) I.last_logits = nullptr;  // the logits of the call before no longer follow the cache
      return aborted("prefill aborted by the abort callback after " + std::to_string(i) + " of " + std::to_string(n) +
                     " tokens (n_past " + std::to_string(I.n_past) + ")");
    }
    const size_t b = n - i < I.n_batch ? n - i : I.n_batch;
    const bool last = i + b == n;
    Status st = I.forward(tokens + i, b, last, each, i);
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

const float* Session::logits() const { return impl_->last_logits; }
const float* Session::hidden() const { return impl_->hidden.data(); }

Status Session::classify(float* probs) {
  Impl& I = *impl_;
  const size_t n = I.M->config.n_classes;
  if (n == 0) return invalid_argument("classify: " + I.model->path() + " has no classifier head");
  if (!I.has_hidden) return invalid_argument("classify: run prefill() on the input first");
  const std::unique_lock<std::mutex> lock = I.M->compute_lock();
  EMBER_RETURN_IF_ERROR(I.M->cls.run(1, I.hidden.data(), probs, I.pool.get(), *I.K, I.scratch()));
  I.K->softmax_f32(probs, n);
  return Status::Ok();
}
size_t Session::n_past() const { return impl_->n_past; }
uint32_t Session::n_threads() const { return static_cast<uint32_t>(impl_->pool->n_threads()); }
size_t Session::n_ctx() const { return impl_->T; }
size_t Session::n_vocab() const { return impl_->V; }
const Model& Session::model() const { return *impl_->model; }

std::vector<OpProfile> Session::profile() const {
  std::vector<OpProfile> r;
  if (!impl_->prof.on) return r;
  for (int i = 0; i < kNumOps; ++i) r.push_back({kOpNames[i], impl_->prof.seconds[i], impl_->prof.calls[i]});
  return r;
}

void Session::reset_profile() {
  const bool on = impl_->prof.on;
  impl_->prof = Profiler();
  impl_->prof.on = on;
}
void Session::reset() {
  impl_->n_past = 0;
  impl_->last_logits = nullptr;
  impl_->has_hidden = false;
}

Status Session::trim(size_t n) {
  Impl& I = *impl_;
  if (n > I.n_past)
    return invalid_argument("trim: " + std::to_string(n) + " tokens asked to keep, the cache holds " + std::to_string(I.n_past));
  if (n == I.n_past) return Status::Ok();
  // Positions n.. are simply overwritten by the next call: every cache row is written before it is read.
  I.n_past = n;
  I.last_logits = nullptr;
  I.has_hidden = false;
  return Status::Ok();
}

const int32_t* Session::tokens() const { return impl_->tokens.data(); }
void Session::set_abort_callback(AbortCallback abort) { impl_->abort = std::move(abort); }
const AbortCallback& Session::abort_callback() const { return impl_->abort; }

StateView Session::Impl::state_view() const {
  auto* self = const_cast<Impl*>(this);  // restore writes through the same view
  StateView v;
  v.model = model.get();
  v.kv_type = kv_type;
  v.n_vocab = V;
  v.n_ctx = T;
  v.n_embd = C;
  v.n_head = H;
  v.n_layer = L;
  v.n_past = n_past;
  v.tokens = self->tokens.data();
  v.logits = const_cast<float*>(last_logits);
  v.hidden = self->hidden.data();
  v.has_hidden = has_hidden;
  v.k = self->k_cache.data();
  v.v = self->v_cache.data();
  v.k_q8 = self->k_q8.data();
  v.v_q8 = self->v_q8.data();
  v.k_scale = self->k_scale.data();
  v.v_scale = self->v_scale.data();
  return v;
}

size_t Session::state_size() const { return state_bytes(impl_->state_view()); }

Status Session::save_state(void* dst, size_t capacity, size_t* written) const {
  return write_state(impl_->state_view(), dst, capacity, written);
}

Result<std::vector<uint8_t>> Session::save_state() const {
  const StateView v = impl_->state_view();
  std::vector<uint8_t> out;
  try {
    out.resize(state_bytes(v));
  } catch (const std::bad_alloc&) {
    return internal_error("save_state: out of memory for " + std::to_string(state_bytes(v)) + " bytes");
  }
  size_t written = 0;
  EMBER_RETURN_IF_ERROR(write_state(v, out.data(), out.size(), &written));
  return out;
}

Status Session::restore_state(const void* data, size_t size) {
  Impl& I = *impl_;
  StateView into = I.state_view();
  into.logits = I.logits.data();  // restored logits land in row 0 of the logits scratch
  EMBER_ASSIGN_OR_RETURN(const StateRead r, read_state(into, data, size));
  I.n_past = r.n_past;
  I.last_logits = r.has_logits ? I.logits.data() : nullptr;
  I.has_hidden = r.has_hidden;
  return Status::Ok();
}

Status Session::save_state_file(const std::string& path) const {
  EMBER_ASSIGN_OR_RETURN(const std::vector<uint8_t> bytes, save_state());
  return write_file_replacing(path, bytes.data(), bytes.size());
}

Status Session::restore_state_file(const std::string& path) {
  // The largest state this session can hold: its full context, with logits, hidden state and the name.
  StateView full = impl_->state_view();
  full.n_past = impl_->T;
  full.logits = impl_->logits.data();
  full.has_hidden = true;
  EMBER_ASSIGN_OR_RETURN(const std::string bytes, read_file(path, state_bytes(full) + kStateMaxNameBytes));
  return restore_state(bytes.data(), bytes.size()).with_context(path);
}

size_t Session::kv_cache_bytes() const {
  const Impl& I = *impl_;
  return (I.k_cache.size() + I.v_cache.size() + I.k_scale.size() + I.v_scale.size()) * sizeof(float) + I.k_q8.size() +
         I.v_q8.size();
}

size_t Session::memory_bytes() const {
  const Impl& I = *impl_;
  size_t n = I.x.size() + I.xn.size() + I.qkv.size() + I.att.size() + I.tmp.size() + I.ff.size() + I.scores.size() +
             I.logits.size() + I.hidden.size() + I.xs.size() + I.xg.size();
  return kv_cache_bytes() + n * sizeof(float) + I.xq.size() + I.q8.size() + I.tokens.size() * sizeof(int32_t);
}

KvType Session::kv_type() const { return impl_->kv_type; }

const char* kv_type_name(KvType t) { return t == KvType::kInt8 ? "int8" : "f32"; }

const char* kernel_table_name() { return kernels().name; }

Result<KvType> kv_type_from_name(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "int8") return KvType::kInt8;
  return invalid_argument("unknown KV cache type '" + name + "' (f32 or int8)");
}

Result<PerplexityResult> compute_perplexity(Session& s, const std::vector<int32_t>& tokens, size_t ctx,
                                            const std::function<void(size_t, size_t)>& progress) {
  if (ctx < 2) return invalid_argument("perplexity: window must be at least 2 tokens (got " + std::to_string(ctx) + ")");
  if (ctx > s.n_ctx())
    return invalid_argument("perplexity: window " + std::to_string(ctx) + " exceeds the model's n_ctx " +
                            std::to_string(s.n_ctx()));
  if (tokens.size() < 2) return invalid_argument("perplexity: need at least 2 tokens (got " + std::to_string(tokens.size()) + ")");
  const size_t V = s.n_vocab();
  double nll = 0.0;
  size_t count = 0;
  size_t bad = SIZE_MAX;  // the first token position whose logits are not all finite
  for (size_t w = 0; w < tokens.size(); w += ctx) {
    const size_t len = tokens.size() - w < ctx ? tokens.size() - w : ctx;
    if (len < 2) break;
    const int32_t* win = tokens.data() + w;
    Session::LogitsCallback cb = [&](size_t i, const float* logits) {
      if (i + 1 >= len || bad != SIZE_MAX) return;
      bool finite = true;
      for (size_t j = 0; j < V; ++j) finite &= std::isfinite(logits[j]);
      if (!finite) {
        bad = w + i;
        return;
      }
      nll += log_sum_exp_f32(logits, V) - logits[win[i + 1]];
      ++count;
    };
    s.reset();
    EMBER_RETURN_IF_ERROR(s.prefill(win, len, &cb));
    if (bad != SIZE_MAX) {
      s.reset();
      return invalid_file("perplexity: the model's logits are not finite (NaN or infinite) at token " +
                          std::to_string(bad) + " of " + std::to_string(tokens.size()) +
                          " (a weight is NaN or infinite, or the activations overflow)" +
                          (s.model().path().empty() ? std::string() : " in " + s.model().path()));
    }
    if (progress) progress(w + len, tokens.size());
  }
  s.reset();
  PerplexityResult r;
  r.n_tokens = count;
  r.mean_nll = nll / static_cast<double>(count);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

}  // namespace ember
