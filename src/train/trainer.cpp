// The GPT training driver over the op pairs of ops.h (llm.c's gpt2_forward / gpt2_backward /
// gpt2_update, for both norm placements). The residual stream of each layer, with the buffers named
// as below (ln1 / ln2 are always the outputs of the tensors ln_1 / ln_2):
//
//   pre-LN (GPT-2)                              post-LN (GPT-1)
//   ln1  = LN_1(x)                              qkv  = x Wqkv
//   qkv  = ln1 Wqkv                             atty = attention(qkv)
//   atty = attention(qkv)                       res1 = x + drop(atty Wo)
//   res1 = x + drop(atty Wo)                    ln1  = LN_1(res1)
//   ln2  = LN_2(res1)                           fch  = ln1 Wfc;  fcg = act(fch)
//   fch  = ln2 Wfc;  fcg = act(fch)             res2 = ln1 + drop(fcg Wp)
//   res2 = res1 + drop(fcg Wp)  -> next x       ln2  = LN_2(res2)  -> next x
//
// then (pre-LN) lnf = LN_f(x); logits = lnf wte^T (or lm_head^T). Biases omitted above.
#include "ember/train.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>

#include "core/threadpool.h"
#include "core/visibility.h"
#include "ember/io.h"
#include "kernels/kernels.h"
#include "kernels/gemm_f32.h"
#include "model/block.h"
#include "model/layer_tensors.h"
#include "train/ops.h"

namespace ember {

namespace {

constexpr char kStateMagic[8] = {'E', 'M', 'B', 'T', 'R', 'N', 'S', '1'};
constexpr uint32_t kStateVersion = 1;
constexpr size_t kChunk = 16384;  // elements per task of the optimizer and the gradient norm

// 64-byte aligned float array (one per block: parameters, activations).
template <typename T>
struct Block {
  T* p = nullptr;
  size_t n = 0;
  ~Block() { std::free(p); }
  Status allocate(size_t count, const char* what) {
    std::free(p);
    const size_t bytes = ((count ? count : 1) * sizeof(T) + 63) / 64 * 64;
    p = static_cast<T*>(std::aligned_alloc(64, bytes));
    n = p ? count : 0;
    if (!p) return internal_error(std::string("trainer: out of memory allocating ") + what);
    std::memset(p, 0, bytes);
    return Status::Ok();
  }
};

// Offsets of one layer's tensors in the flat parameter block, by their names in model/layer_tensors.h.
struct LayerOffsets {
  size_t at[kLayerTensors];
  size_t operator[](LayerTensor t) const { return at[static_cast<int>(t)]; }
};

// Activation buffers of one layer; see the diagram at the top.
struct LayerActs {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *res1, *ln2, *ln2_mean, *ln2_rstd, *fch, *fcg, *res2;
  uint8_t *att_mask, *res1_mask, *res2_mask;  // dropout only
  const float* out(bool pre) const { return pre ? res2 : ln2; }
  // The rows of one shard: token rows from r0, attention rows from a0 = first sequence * H * T * T.
  LayerActs rows(size_t r0, size_t a0, size_t C, size_t F) const {
    LayerActs v = *this;
    for (float** p : {&v.ln1, &v.atty, &v.res1, &v.ln2, &v.res2}) *p += r0 * C;
    for (float** p : {&v.ln1_mean, &v.ln1_rstd, &v.ln2_mean, &v.ln2_rstd}) *p += r0;
    v.qkv += r0 * 3 * C;
    v.fch += r0 * F;
    v.fcg += r0 * F;
    v.att += a0;
    if (att_mask) {
      v.att_mask += a0;
      v.res1_mask += r0 * C;
      v.res2_mask += r0 * C;
    }
    return v;
  }
};

// Box-Muller on a 64-bit Mersenne twister: the same numbers on every platform (std::normal_distribution
// is implementation-defined).
class Normal {
 public:
  explicit Normal(uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (have_) {
      have_ = false;
      return spare_;
    }
    double u1, u2;
    do u1 = uniform(); while (u1 <= 0.0);
    u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
    spare_ = r * std::sin(a);
    have_ = true;
    return r * std::cos(a);
  }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }
  std::mt19937_64 rng_;
  bool have_ = false;
  double spare_ = 0.0;
};

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

}  // namespace

float learning_rate(const LrSchedule& s, uint64_t it) {
  if (it < s.warmup) return s.lr * static_cast<float>(it + 1) / static_cast<float>(s.warmup + 1);
  if (s.decay_iters == 0) return s.lr;
  if (it > s.decay_iters) return s.min_lr;
  if (s.decay_iters <= s.warmup) return s.min_lr;
  const double ratio = static_cast<double>(it - s.warmup) / static_cast<double>(s.decay_iters - s.warmup);
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return static_cast<float>(s.min_lr + coeff * (static_cast<double>(s.lr) - s.min_lr));
}

struct EMBER_HIDDEN Trainer::Impl {
  ModelConfig cfg;
  TrainOptions opts;
  const Kernels* K = nullptr;
  std::unique_ptr<ThreadPool> pool;
  // Data parallelism: a micro-batch is split into up to S shards of whole sequences. Each shard runs
  // its forward and backward on one thread (ops get no pool) with its own scratch and, except shard
  // 0 which adds straight into grads, its own gradient block; the blocks are then added in shard
  // order. Three barriers per micro-batch (forward, backward, gradient sum) instead of one per op
  // keep the threads busy on a machine that others share (a descheduled worker stalls every barrier),
  // and since S does not depend on n_threads neither do the results. With one shard (batch 1) the ops
  // themselves run on the pool.
  size_t S = 1;
  std::vector<train::OpContext> sctx;
  Block<float> shard_scratch, shard_grads;
  size_t V = 0, C = 0, H = 0, F = 0, L = 0, Tmax = 0, Bmax = 0, Nmax = 0;
  bool pre = true;

  std::vector<ParamInfo> info;
  size_t n_params = 0;
  Block<float> params, grads, m, v;
  size_t wte = 0, wpe = 0, lnfg = 0, lnfb = 0, lm = 0;  // offsets (lm: wte when tied)
  std::vector<LayerOffsets> lo;

  // Activations and scratch, one block.
  Block<float> acts;
  Block<uint8_t> masks;
  Block<double> row_loss;
  Block<int32_t> tok, tgt;
  // Classifier head (n_classes > 0): reads the final hidden state at position last[b] of sequence b.
  size_t NC = 0, cls_w = 0, cls_b = 0;
  Block<float> cls_logits, cls_probs;  // (batch, n_classes)
  Block<double> cls_loss;              // (batch)
  Block<int32_t> labels, last;         // (batch)
  bool classify = false;               // last forward: classification loss (+ lm_weight * LM loss)
  float lm_weight = 1.0f;
  size_t cls_count = 0;
  double cls_mean = 0.0, lm_mean = 0.0;  // the parts of the last forward_classify's loss
  std::vector<LayerActs> la;
  float *encoded = nullptr, *lnf = nullptr, *lnf_mean = nullptr, *lnf_rstd = nullptr, *logits = nullptr,
        *probs = nullptr;
  uint8_t* emb_mask = nullptr;
  float *dres = nullptr, *dtmp = nullptr, *dln = nullptr, *dproj = nullptr, *datty = nullptr, *dqkv = nullptr,
        *dfc = nullptr, *dlogits = nullptr;
  // The input gradients' weight operands (W in GEMM panels), packed once per optimizer step.
  struct Packed {
    size_t w;  // parameter offset of the weight
    size_t in, out;
    float* dx;
  };
  std::vector<Packed> wpacked;  // per layer, by BlockLinear (packed_dx(4 * l + b)); then the LM head
  Block<float> wpack;
  bool packed_dirty = true;
  Block<double> norm_parts;

  // Last forward.
  size_t B = 0, T = 0, count = 0;
  double total_loss = 0.0;
  bool has_targets = false, backward_done = true, dropped = false;
  bool training = true;
  uint64_t steps = 0, forwards = 0;

  float* P(size_t off) { return params.p + off; }
  float* shard_grad(size_t s) { return s == 0 ? grads.p : shard_grads.p + (s - 1) * n_params; }
  size_t shards_now() const { return B < S ? B : S; }
  // Sequences [*b0, *b0 + *nb) of shard s for the current batch.
  void shard_seqs(size_t s, size_t* b0, size_t* nb) const {
    const size_t n = shards_now();
    *b0 = s * B / n;
    *nb = (s + 1) * B / n - *b0;
  }
  train::OpContext shard_ctx(size_t s) const {
    train::OpContext c = sctx[s];
    c.pool = shards_now() == 1 ? pool.get() : nullptr;
    return c;
  }
  Status shard_forward(size_t s, uint64_t fwd);
  void shard_backward(size_t s, float scale);
  std::vector<Status> shard_status;  // per shard, of the last forward
  const float* packed_dx(size_t i) const { return wpacked[i].dx; }
  void pack_weights();

  Status init(const ModelConfig& c, const TrainOptions& o);
  void init_weights();
  Status forward(const int32_t* tokens, const int32_t* targets, size_t B, size_t T, float* loss,
                 const int32_t* labels = nullptr, const int32_t* last = nullptr, float lm_weight = 1.0f);
  Status backward(float scale);
  uint64_t shape_hash() const;
};

Status Trainer::Impl::init(const ModelConfig& c, const TrainOptions& o) {
  Status cs = c.validate();
  if (!cs.ok()) return invalid_argument("trainer: " + cs.message());
  if (o.batch == 0) return invalid_argument("trainer: batch must be at least 1");
  if (o.seq_len > c.n_ctx)
    return invalid_argument("trainer: seq_len " + std::to_string(o.seq_len) + " exceeds n_ctx " + std::to_string(c.n_ctx));
  if (o.n_threads == 0 || o.n_threads > 1024) return invalid_argument("trainer: n_threads must be in [1, 1024]");
  if (!(o.dropout >= 0.0f && o.dropout < 1.0f)) return invalid_argument("trainer: dropout must be in [0, 1)");
  cfg = c;
  opts = o;
  if (opts.seq_len == 0) opts.seq_len = c.n_ctx;
  V = c.n_vocab, C = c.n_embd, H = c.n_head, F = c.n_ff, L = c.n_layer;
  Tmax = opts.seq_len, Bmax = opts.batch, Nmax = Bmax * Tmax;
  pre = c.norm == NormPlacement::kPreLN;
  K = &kernels();
  pool.reset(new ThreadPool(opts.n_threads, opts.oversubscribe));
  if (Nmax > (size_t{1} << 24)) return invalid_argument("trainer: batch * seq_len is too large");

  // Parameters in required_tensors order.
  for (const TensorRequirement& r : required_tensors(c)) {
    ParamInfo p;
    p.name = r.name;
    p.shape = r.shape;
    p.offset = n_params;
    p.size = 1;
    for (uint64_t d : r.shape) p.size *= d;
    const bool w2d = r.shape.size() == 2;
    p.is_embedding = r.name == "wte" || r.name == "wpe";
    p.is_weight = w2d && !p.is_embedding;
    n_params += p.size;
    info.push_back(p);
  }
  auto off = [&](const std::string& n) {
    for (const ParamInfo& p : info)
      if (p.name == n) return p.offset;
    return size_t{0};  // unreachable for names of required_tensors
  };
  wte = off("wte");
  wpe = off("wpe");
  if (pre) {
    lnfg = off("ln_f.weight");
    lnfb = off("ln_f.bias");
  }
  lm = c.tied_lm_head ? wte : off("lm_head.weight");
  NC = c.n_classes;
  if (NC) {
    cls_w = off("cls.weight");
    cls_b = off("cls.bias");
  }
  for (size_t l = 0; l < L; ++l) {
    LayerOffsets o;
    for (size_t t = 0; t < kLayerTensors; ++t) o.at[t] = off(layer_tensor_name(l, static_cast<LayerTensor>(t)));
    lo.push_back(o);
  }
  EMBER_RETURN_IF_ERROR(params.allocate(n_params, "parameters"));
  EMBER_RETURN_IF_ERROR(grads.allocate(n_params, "gradients"));
  EMBER_RETURN_IF_ERROR(m.allocate(n_params, "AdamW moments"));
  EMBER_RETURN_IF_ERROR(v.allocate(n_params, "AdamW moments"));

  // Activations: carve one block. Every buffer starts on a 16-float boundary.
  const size_t N = Nmax, att = Bmax * H * Tmax * Tmax;
  struct Req {
    float** ptr;
    size_t n;
  };
  std::vector<Req> reqs;
  la.resize(L);
  for (LayerActs& a : la) {
    reqs.insert(reqs.end(), {{&a.ln1, N * C}, {&a.ln1_mean, N}, {&a.ln1_rstd, N}, {&a.qkv, N * 3 * C}, {&a.att, att},
                             {&a.atty, N * C}, {&a.res1, N * C}, {&a.ln2, N * C}, {&a.ln2_mean, N}, {&a.ln2_rstd, N},
                             {&a.fch, N * F}, {&a.fcg, N * F}, {&a.res2, N * C}});
  }
  reqs.insert(reqs.end(), {{&encoded, N * C}, {&lnf, N * C}, {&lnf_mean, N}, {&lnf_rstd, N}, {&logits, N * V},
                           {&probs, N * V}, {&dres, N * C}, {&dtmp, N * C}, {&dln, N * C}, {&dproj, N * C},
                           {&datty, N * C}, {&dqkv, N * 3 * C}, {&dfc, N * F}, {&dlogits, N * V}});
  size_t total = 0;
  for (const Req& r : reqs) total += (r.n + 15) / 16 * 16;
  EMBER_RETURN_IF_ERROR(acts.allocate(total, "activations"));
  size_t at = 0;
  for (const Req& r : reqs) {
    *r.ptr = acts.p + at;
    at += (r.n + 15) / 16 * 16;
  }
  if (opts.dropout > 0.0f) {
    const size_t per_layer = att + 2 * N * C;
    EMBER_RETURN_IF_ERROR(masks.allocate(N * C + L * per_layer, "dropout masks"));
    emb_mask = masks.p;
    for (size_t l = 0; l < L; ++l) {
      uint8_t* base = masks.p + N * C + l * per_layer;
      la[l].att_mask = base;
      la[l].res1_mask = base + att;
      la[l].res2_mask = base + att + N * C;
    }
  } else {
    for (LayerActs& a : la) a.att_mask = a.res1_mask = a.res2_mask = nullptr;
  }
  EMBER_RETURN_IF_ERROR(row_loss.allocate(N, "loss rows"));
  EMBER_RETURN_IF_ERROR(tok.allocate(N, "tokens"));
  EMBER_RETURN_IF_ERROR(tgt.allocate(N, "targets"));
  EMBER_RETURN_IF_ERROR(cls_logits.allocate(Bmax * (NC ? NC : 1), "class logits"));
  EMBER_RETURN_IF_ERROR(cls_probs.allocate(Bmax * (NC ? NC : 1), "class probabilities"));
  EMBER_RETURN_IF_ERROR(cls_loss.allocate(Bmax, "class losses"));
  EMBER_RETURN_IF_ERROR(labels.allocate(Bmax, "labels"));
  EMBER_RETURN_IF_ERROR(last.allocate(Bmax, "last positions"));
  // Packed input-gradient weights.
  size_t packed_total = 0;
  auto add_packed = [&](size_t w, size_t in, size_t out) {
    wpacked.push_back({w, in, out, nullptr});
    packed_total += (gemm_pack_floats(out, in) + 15) / 16 * 16;
  };
  for (const LayerOffsets& o : lo)
    for (BlockLinear b : kBlockLinears) add_packed(o[linear_weight(b)], linear_in(b, C, F), linear_out(b, C, F));
  add_packed(lm, C, V);
  EMBER_RETURN_IF_ERROR(wpack.allocate(packed_total, "packed weights"));
  size_t pat = 0;
  for (Packed& pk : wpacked) {
    pk.dx = wpack.p + pat;
    pat += (gemm_pack_floats(pk.out, pk.in) + 15) / 16 * 16;
  }
  EMBER_RETURN_IF_ERROR(norm_parts.allocate((n_params + kChunk - 1) / kChunk, "norm partial sums"));
  // Shards: scratch for at most ceil(batch / S) sequences each; gradient blocks for shards 1..S-1.
  S = opts.shards ? opts.shards : 4;
  if (S > Bmax) S = Bmax;
  const size_t seqs = (Bmax + S - 1) / S, rows = seqs * Tmax;
  const size_t scratch_n = (std::max(train::layernorm_backward_scratch_floats(rows, C),
                                     train::attention_scratch_floats(seqs, Tmax, C, H)) + 15) / 16 * 16;
  const size_t pack_n = (gemm_pack_floats(rows, std::max(C, F)) + 15) / 16 * 16;
  EMBER_RETURN_IF_ERROR(shard_scratch.allocate(S * (scratch_n + pack_n), "shard scratch"));
  EMBER_RETURN_IF_ERROR(shard_grads.allocate((S - 1) * n_params, "shard gradients"));
  for (size_t i = 0; i < S; ++i) {
    train::OpContext c;
    c.K = K;
    c.scratch = shard_scratch.p + i * (scratch_n + pack_n);
    c.pack = c.scratch + scratch_n;
    sctx.push_back(c);
  }
  shard_status.resize(S);
  return Status::Ok();
}

void Trainer::Impl::pack_weights() {
  parallel_for(pool.get(), wpacked.size(), [this](size_t i) {
    const Packed& pk = wpacked[i];
    train::pack_linear_weight(params.p + pk.w, pk.in, pk.out, pk.dx);
  });
  packed_dirty = false;
}

void Trainer::Impl::init_weights() {
  Normal rnd(opts.seed);
  const float std_proj = 0.02f / std::sqrt(2.0f * static_cast<float>(L));
  for (const ParamInfo& p : info) {
    float* w = P(p.offset);
    const std::string& n = p.name;
    const bool ln = n.find("ln_") != std::string::npos;
    if (ln) {
      const float val = n.size() >= 7 && n.compare(n.size() - 7, 7, ".weight") == 0 ? 1.0f : 0.0f;
      for (size_t i = 0; i < p.size; ++i) w[i] = val;
    } else if (p.shape.size() == 1) {
      for (size_t i = 0; i < p.size; ++i) w[i] = 0.0f;  // biases
    } else {
      const bool proj = n.find("c_proj.weight") != std::string::npos;
      const double sd = proj ? std_proj : 0.02;
      for (size_t i = 0; i < p.size; ++i) w[i] = static_cast<float>(sd * rnd());
    }
  }
}

Status Trainer::Impl::forward(const int32_t* tokens, const int32_t* targets, size_t b_, size_t t_, float* loss,
                              const int32_t* lbl, const int32_t* lst, float lm_w) {
  if (b_ == 0 || b_ > Bmax) return invalid_argument("trainer: batch " + std::to_string(b_) + " outside [1, " + std::to_string(Bmax) + "]");
  if (t_ == 0 || t_ > Tmax) return invalid_argument("trainer: sequence length " + std::to_string(t_) + " outside [1, " + std::to_string(Tmax) + "]");
  const size_t N = b_ * t_;
  for (size_t i = 0; i < N; ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= V)
      return invalid_argument("trainer: token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
    if (targets && targets[i] >= 0 && static_cast<size_t>(targets[i]) >= V)
      return invalid_argument("trainer: target " + std::to_string(targets[i]) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(V) + ")");
  }
  if (lbl) {
    if (NC == 0) return invalid_argument("trainer: classification needs a classifier head (config n_classes > 0)");
    if (!lst) return invalid_argument("trainer: classification needs the last position of each sequence");
    if (!std::isfinite(lm_w)) return invalid_argument("trainer: lm_weight must be finite");
    for (size_t b = 0; b < b_; ++b) {
      if (lst[b] < 0 || static_cast<size_t>(lst[b]) >= t_)
        return invalid_argument("trainer: last position " + std::to_string(lst[b]) + " of sequence " + std::to_string(b) +
                                " is outside [0, " + std::to_string(t_) + ")");
      if (lbl[b] >= 0 && static_cast<size_t>(lbl[b]) >= NC)
        return invalid_argument("trainer: label " + std::to_string(lbl[b]) + " of sequence " + std::to_string(b) +
                                " is outside [0, " + std::to_string(NC) + ")");
    }
  }
  B = b_, T = t_;
  std::memcpy(tok.p, tokens, N * sizeof(int32_t));
  if (targets) std::memcpy(tgt.p, targets, N * sizeof(int32_t));
  has_targets = targets != nullptr;
  classify = lbl != nullptr;
  lm_weight = classify ? lm_w : 1.0f;
  if (classify) {
    std::memcpy(labels.p, lbl, B * sizeof(int32_t));
    std::memcpy(last.p, lst, B * sizeof(int32_t));
  }
  backward_done = false;
  dropped = training && opts.dropout > 0.0f;
  const uint64_t fwd = forwards;
  if (training) ++forwards;
  if (packed_dirty) pack_weights();
  parallel_for(pool.get(), shards_now(), [this, fwd](size_t s) { shard_status[s] = shard_forward(s, fwd); });
  for (size_t s = 0; s < shards_now(); ++s)
    if (!shard_status[s].ok()) {
      backward_done = true;  // nothing to differentiate
      return shard_status[s];
    }
  // The mean over counted rows, summed in row order: the same for any sharding.
  *loss = 0.0f;
  count = 0;
  total_loss = 0.0;
  if (targets) {
    for (size_t r = 0; r < N; ++r)
      if (tgt.p[r] >= 0) {
        total_loss += row_loss.p[r];
        ++count;
      }
    if (count) *loss = static_cast<float>(total_loss / static_cast<double>(count));
  }
  if (classify) {
    double cls_total = 0.0;
    cls_count = 0;
    for (size_t b = 0; b < B; ++b)
      if (labels.p[b] >= 0) {
        cls_total += cls_loss.p[b];
        ++cls_count;
      }
    lm_mean = count ? total_loss / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
    cls_mean = cls_count ? cls_total / static_cast<double>(cls_count) : 0.0;
    *loss = static_cast<float>(cls_mean + (count ? static_cast<double>(lm_weight) * lm_mean : 0.0));
  }
  return Status::Ok();
}

Status Trainer::Impl::shard_forward(size_t s, uint64_t fwd) {
  size_t b0, nb;
  shard_seqs(s, &b0, &nb);
  if (nb == 0) return Status::Ok();
  const train::OpContext ctx = shard_ctx(s);
  const size_t r0 = b0 * T, N = nb * T, a0 = b0 * H * T * T;
  const float pd = opts.dropout;
  // Masks hash the element's index in the whole batch, so they do not depend on the sharding.
  auto drop = [&](float* x, uint8_t* mask, size_t n, uint64_t site, size_t first) {
    train::dropout_mask(mask, n, pd, train::dropout_key(opts.seed, fwd, site), first);
    train::dropout_apply(x, mask, n, pd);
  };
  // This shard's rows of the batch-wide buffers.
  float* encoded = this->encoded + r0 * C;
  float* lnf = this->lnf + r0 * C;
  float* lnf_mean = this->lnf_mean + r0;
  float* lnf_rstd = this->lnf_rstd + r0;
  float* logits = this->logits + r0 * V;
  float* probs = this->probs + r0 * V;
  const int32_t* tok = this->tok.p + r0;
  const int32_t* tgt = this->tgt.p + r0;

  train::embedding_forward(encoded, tok, P(wte), P(wpe), nb, T, C);
  if (dropped) drop(encoded, emb_mask + r0 * C, N * C, 0, r0 * C);
  const float* x = encoded;
  // The block's steps on the trainer's buffers (model/block.h), keeping what the backward needs.
  struct Ops {
    Trainer::Impl& I;
    const train::OpContext& ctx;
    const LayerOffsets* o;
    LayerActs a;
    size_t l, N, nb, a0, first;  // first: index of the shard's first element in the batch's (N, C) rows
    uint64_t fwd;
    void layernorm(BlockNorm which, const float* in, float* out) {
      const bool one = which == BlockNorm::kLn1;
      train::layernorm_forward(ctx, out, one ? a.ln1_mean : a.ln2_mean, one ? a.ln1_rstd : a.ln2_rstd, in,
                               I.P((*o)[norm_weight(which)]), I.P((*o)[norm_bias(which)]), N, I.C, I.cfg.norm_eps);
    }
    Status linear(BlockLinear which, const float* in, float* out) {
      return train::linear_forward(ctx, out, in, I.P((*o)[linear_weight(which)]), I.P((*o)[linear_bias(which)]), N,
                                   linear_in(which, I.C, I.F), linear_out(which, I.C, I.F));
    }
    Status attention(const float* qkv, float* out) {
      const float pd = I.opts.dropout;
      if (I.dropped)
        train::dropout_mask(a.att_mask, nb * I.H * I.T * I.T, pd, train::dropout_key(I.opts.seed, fwd, 1 + 3 * l), a0);
      train::attention_forward(ctx, out, a.att, qkv, I.dropped ? a.att_mask : nullptr, pd, nb, I.T, I.C, I.H);
      return Status::Ok();
    }
    void activation(const float* in, float* out) { train::activation_forward(ctx, I.cfg.activation, out, in, N * I.F); }
    void dropout(BlockDropout site, float* x) {
      if (!I.dropped) return;
      const bool attn = site == BlockDropout::kAttnOut;
      uint8_t* mask = attn ? a.res1_mask : a.res2_mask;
      train::dropout_mask(mask, N * I.C, I.opts.dropout, train::dropout_key(I.opts.seed, fwd, (attn ? 2 : 3) + 3 * l), first);
      train::dropout_apply(x, mask, N * I.C, I.opts.dropout);
    }
    void add(const float* x, float* y) { I.K->add_f32(x, y, N * I.C); }
  };
  for (size_t l = 0; l < L; ++l) {
    const LayerActs a = la[l].rows(r0, a0, C, F);
    Ops ops{*this, ctx, &lo[l], a, l, N, nb, a0, r0 * C, fwd};
    EMBER_RETURN_IF_ERROR(block_forward(ops, pre, BlockBuffers{x, a.ln1, a.qkv, a.atty, a.res1, a.ln2, a.fch, a.fcg, a.res2}));
    x = a.out(pre);
  }
  const float* h = x;
  if (pre) {
    train::layernorm_forward(ctx, lnf, lnf_mean, lnf_rstd, x, P(lnfg), P(lnfb), N, C, cfg.norm_eps);
    h = lnf;
  }
  // The LM head runs unless this is a classification-only forward (a GPT vocabulary makes it costly).
  if (!classify || has_targets) EMBER_RETURN_IF_ERROR(train::linear_forward(ctx, logits, h, P(lm), nullptr, N, C, V));
  if (has_targets) {
    size_t n = 0;
    (void)train::crossentropy_forward(ctx, probs, row_loss.p + r0, logits, tgt, N, V, &n);
  }
  if (classify) {
    for (size_t b = b0; b < b0 + nb; ++b) {
      const float* hb = h + ((b - b0) * T + static_cast<size_t>(last.p[b])) * C;
      float* z = cls_logits.p + b * NC;
      for (size_t k = 0; k < NC; ++k) z[k] = K->dot_f32(P(cls_w) + k * C, hb, C) + P(cls_b)[k];
      std::memcpy(cls_probs.p + b * NC, z, NC * sizeof(float));
      K->softmax_f32(cls_probs.p + b * NC, NC);
      cls_loss.p[b] = 0.0;
      if (labels.p[b] < 0) continue;
      cls_loss.p[b] = log_sum_exp_f32(z, NC) - z[labels.p[b]];
    }
  }
  return Status::Ok();
}

Status Trainer::Impl::backward(float scale) {
  if (backward_done) return invalid_argument("trainer: backward() needs a forward() first (and runs once per forward)");
  if (!has_targets && !classify) return invalid_argument("trainer: backward() after a forward() without targets");
  backward_done = true;
  if (count == 0 && (!classify || cls_count == 0)) return Status::Ok();  // every target ignored: zero gradient
  const size_t n = shards_now();
  parallel_for(pool.get(), n, [this, scale](size_t s) { shard_backward(s, scale); });
  if (n > 1) {
    // grads (holding shard 0's part) += shard 1 + shard 2 + ..., in that order.
    float* g = grads.p;
    parallel_for_tiles(pool.get(), n_params, kChunk, [&](size_t i0, size_t k) {
      for (size_t s = 1; s < n; ++s) K->add_f32(shard_grad(s) + i0, g + i0, k);
    });
  }
  return Status::Ok();
}

void Trainer::Impl::shard_backward(size_t s, float scale) {
  size_t b0, nb;
  shard_seqs(s, &b0, &nb);
  if (s > 0) std::memset(shard_grad(s), 0, n_params * sizeof(float));
  if (nb == 0) return;
  const train::OpContext ctx = shard_ctx(s);
  const size_t r0 = b0 * T, N = nb * T, a0 = b0 * H * T * T;
  const float pd = opts.dropout;
  float* gbase = shard_grad(s);
  auto G = [gbase](size_t off) { return gbase + off; };
  // This shard's rows of the batch-wide buffers.
  const float* encoded = this->encoded + r0 * C;
  const float* lnf = this->lnf + r0 * C;
  const float* lnf_mean = this->lnf_mean + r0;
  const float* lnf_rstd = this->lnf_rstd + r0;
  const float* probs = this->probs + r0 * V;
  const int32_t* tok = this->tok.p + r0;
  const int32_t* tgt = this->tgt.p + r0;
  float* dres = this->dres + r0 * C;
  float* dtmp = this->dtmp + r0 * C;
  float* dln = this->dln + r0 * C;
  float* dproj = this->dproj + r0 * C;
  float* datty = this->datty + r0 * C;
  float* dqkv = this->dqkv + r0 * 3 * C;
  float* dfc = this->dfc + r0 * F;
  float* dlogits = this->dlogits + r0 * V;
  const uint8_t* emb_mask = this->emb_mask ? this->emb_mask + r0 * C : nullptr;

  const float* xL = L ? la[L - 1].rows(r0, a0, C, F).out(pre) : encoded;
  // Gradient of the final hidden states h: from the LM head, then from the classifier head.
  const float* h = pre ? lnf : xL;
  float* dh = pre ? dtmp : dres;
  const float lm_scale = classify ? scale * lm_weight : scale;
  if (has_targets && count > 0 && lm_scale != 0.0f) {
    train::crossentropy_backward(ctx, dlogits, probs, tgt, N, V, lm_scale / static_cast<float>(count));
    train::linear_backward(ctx, dh, false, G(lm), nullptr, dlogits, h, P(lm), N, C, V, packed_dx(4 * L));
  } else {
    std::memset(dh, 0, N * C * sizeof(float));
  }
  if (classify && cls_count > 0) {
    const float f = scale / static_cast<float>(cls_count);
    for (size_t b = b0; b < b0 + nb; ++b) {
      if (labels.p[b] < 0) continue;
      const size_t row = (b - b0) * T + static_cast<size_t>(last.p[b]);
      const float* pb = cls_probs.p + b * NC;
      for (size_t k = 0; k < NC; ++k) {
        const float d = f * (pb[k] - (static_cast<int32_t>(k) == labels.p[b] ? 1.0f : 0.0f));
        K->axpy_f32(d, h + row * C, G(cls_w) + k * C, C);
        G(cls_b)[k] += d;
        K->axpy_f32(d, P(cls_w) + k * C, dh + row * C, C);
      }
    }
  }
  if (pre) train::layernorm_backward(ctx, dres, false, G(lnfg), G(lnfb), dtmp, xL, P(lnfg), lnf_mean, lnf_rstd, N, C);
  // dres: gradient of the current layer's output; becomes the gradient of its input.
  for (size_t l = L; l-- > 0;) {
    const LayerOffsets& o = lo[l];
    const LayerActs a = la[l].rows(r0, a0, C, F);
    const float* x = l ? la[l - 1].rows(r0, a0, C, F).out(pre) : encoded;
    // A linear layer's and a layer norm's backward by name (model/layer_tensors.h).
    auto linear_bwd = [&](BlockLinear w, float* dinp, bool acc, const float* dout, const float* inp) {
      train::linear_backward(ctx, dinp, acc, G(o[linear_weight(w)]), G(o[linear_bias(w)]), dout, inp, P(o[linear_weight(w)]),
                             N, linear_in(w, C, F), linear_out(w, C, F), packed_dx(4 * l + static_cast<size_t>(w)));
    };
    auto norm_bwd = [&](BlockNorm n, float* dinp, bool acc, const float* dout, const float* inp) {
      const bool one = n == BlockNorm::kLn1;
      train::layernorm_backward(ctx, dinp, acc, G(o[norm_weight(n)]), G(o[norm_bias(n)]), dout, inp, P(o[norm_weight(n)]),
                                one ? a.ln1_mean : a.ln2_mean, one ? a.ln1_rstd : a.ln2_rstd, N, C);
    };
    // MLP branch. d_s2: gradient of res2 (pre: dres itself; post: through LN_2).
    const float* d_s2 = dres;
    if (!pre) {
      norm_bwd(BlockNorm::kLn2, dtmp, false, dres, a.res2);
      d_s2 = dtmp;
    }
    const float* d_mlp = d_s2;
    if (dropped) {
      std::memcpy(dproj, d_s2, N * C * sizeof(float));
      train::dropout_apply(dproj, a.res2_mask, N * C, pd);
      d_mlp = dproj;
    }
    linear_bwd(BlockLinear::kMlpProj, dfc, false, d_mlp, a.fcg);
    train::activation_backward(ctx, cfg.activation, dfc, dfc, a.fch, a.fcg, N * F);
    if (pre) {
      linear_bwd(BlockLinear::kMlpFc, dln, false, dfc, a.ln2);
      norm_bwd(BlockNorm::kLn2, dres, true, dln, a.res1);
    } else {
      // ln1 feeds both the MLP and the residual: dtmp (= d res2) += dfc Wfc is the gradient of ln1.
      linear_bwd(BlockLinear::kMlpFc, dtmp, true, dfc, a.ln1);
      norm_bwd(BlockNorm::kLn1, dres, false, dtmp, a.res1);
    }
    // Attention branch; dres is now the gradient of res1.
    const float* d_att = dres;
    if (dropped) {
      std::memcpy(dproj, dres, N * C * sizeof(float));
      train::dropout_apply(dproj, a.res1_mask, N * C, pd);
      d_att = dproj;
    }
    linear_bwd(BlockLinear::kAttnProj, datty, false, d_att, a.atty);
    train::attention_backward(ctx, dqkv, datty, a.qkv, a.att, dropped ? a.att_mask : nullptr, pd, nb, T, C, H);
    if (pre) {
      linear_bwd(BlockLinear::kQkv, dln, false, dqkv, a.ln1);
      norm_bwd(BlockNorm::kLn1, dres, true, dln, x);
    } else {
      linear_bwd(BlockLinear::kQkv, dres, true, dqkv, x);
    }
  }
  if (dropped) train::dropout_apply(dres, emb_mask, N * C, pd);
  train::embedding_backward(G(wte), G(wpe), dres, tok, nb, T, C);
}

uint64_t Trainer::Impl::shape_hash() const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const ParamInfo& p : info) {
    h = fnv1a(h, p.name.data(), p.name.size());
    for (uint64_t d : p.shape) h = fnv1a(h, &d, sizeof d);
  }
  return h;
}

// ---- Trainer --------------------------------------------------------------------------------------------

Trainer::Trainer() : impl_(new Impl()) {}
Trainer::~Trainer() = default;

Result<std::unique_ptr<Trainer>> Trainer::create(const ModelConfig& config, const TrainOptions& opts) {
  std::unique_ptr<Trainer> t(new Trainer());
  EMBER_RETURN_IF_ERROR(t->impl_->init(config, opts));
  t->impl_->init_weights();
  return t;
}

Result<std::unique_ptr<Trainer>> Trainer::from_spec(const ModelSpec& spec, const TrainOptions& opts) {
  EMBER_RETURN_IF_ERROR(spec.validate());
  std::unique_ptr<Trainer> t(new Trainer());
  Impl& I = *t->impl_;
  EMBER_RETURN_IF_ERROR(I.init(spec.config, opts));
  for (const ParamInfo& p : I.info) {
    const TensorData* td = spec.find(p.name);  // present: validate() checked names and shapes
    const std::vector<float> v = tensor_values(*td);
    std::copy(v.begin(), v.end(), I.P(p.offset));
  }
  return t;
}

Result<float> Trainer::forward(const int32_t* tokens, const int32_t* targets, size_t B, size_t T) {
  float loss = 0.0f;
  EMBER_RETURN_IF_ERROR(impl_->forward(tokens, targets, B, T, &loss));
  return loss;
}

Result<float> Trainer::forward_classify(const int32_t* tokens, const int32_t* lm_targets, const int32_t* labels,
                                        const int32_t* last, size_t B, size_t T, float lm_weight) {
  if (!labels) return invalid_argument("trainer: forward_classify needs labels");
  float loss = 0.0f;
  EMBER_RETURN_IF_ERROR(impl_->forward(tokens, lm_targets, B, T, &loss, labels, last, lm_weight));
  return loss;
}

const float* Trainer::class_logits() const { return impl_->cls_logits.p; }
Trainer::ClassifyLoss Trainer::last_classify_loss() const { return {impl_->cls_mean, impl_->lm_mean}; }

Status Trainer::backward(float loss_scale) { return impl_->backward(loss_scale); }

void Trainer::zero_grad() { std::memset(impl_->grads.p, 0, impl_->n_params * sizeof(float)); }

double Trainer::grad_norm() const {
  // Partial sums over fixed chunks, added in chunk order: the same value at any thread count.
  const Impl& I = *impl_;
  const size_t n = I.n_params;
  const float* g = I.grads.p;
  double* parts = I.norm_parts.p;
  parallel_for_tiles(I.pool.get(), n, kChunk, [&](size_t i0, size_t k) {
    double s = 0.0;
    for (size_t i = i0; i < i0 + k; ++i) s += static_cast<double>(g[i]) * g[i];
    parts[i0 / kChunk] = s;
  });
  double s = 0.0;
  for (size_t c = 0; c < (n + kChunk - 1) / kChunk; ++c) s += parts[c];
  return std::sqrt(s);
}

double Trainer::clip_grad_norm(double max_norm) {
  const double norm = grad_norm();
  if (max_norm > 0.0 && norm > max_norm) {
    const float c = static_cast<float>(max_norm / (norm + 1e-6));
    float* g = impl_->grads.p;
    parallel_for_tiles(impl_->pool.get(), impl_->n_params, kChunk, [&](size_t i0, size_t k) {
      for (size_t i = i0; i < i0 + k; ++i) g[i] *= c;
    });
  }
  return norm;
}

void Trainer::step(float lr, const AdamWOptions& opt) {
  Impl& I = *impl_;
  const uint64_t t = ++I.steps;
  const double bc1 = 1.0 - std::pow(static_cast<double>(opt.beta1), static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(static_cast<double>(opt.beta2), static_cast<double>(t));
  // PyTorch's formulation: p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_bc2_sqrt = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = opt.beta1, b2 = opt.beta2, eps = opt.eps;
  const float keep_decay = 1.0f - lr * opt.weight_decay;
  float* w = I.params.p;
  const float* g = I.grads.p;
  float* m = I.m.p;
  float* v = I.v.p;
  const std::vector<ParamInfo>& info = I.info;
  // One pass over the flat block; a chunk may span tensors, so it walks the tensor list.
  parallel_for_tiles(I.pool.get(), I.n_params, kChunk, [&](size_t i0, size_t k) {
    size_t ti = 0;
    while (info[ti].offset + info[ti].size <= i0) ++ti;
    for (size_t i = i0; i < i0 + k;) {
      const ParamInfo& p = info[ti++];
      const size_t end = std::min(i0 + k, p.offset + p.size);
      const bool decay = p.is_weight || (opt.decay_embeddings && p.is_embedding);
      const float keep = decay ? keep_decay : 1.0f;
      for (; i < end; ++i) {
        w[i] *= keep;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        w[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_bc2_sqrt + eps);
      }
    }
  });
  I.packed_dirty = true;
}

void Trainer::set_training(bool on) { impl_->training = on; }
bool Trainer::training() const { return impl_->training; }
const float* Trainer::logits() const { return impl_->logits; }
const float* Trainer::hidden() const {
  const Impl& I = *impl_;
  return I.pre ? I.lnf : (I.L ? I.la[I.L - 1].ln2 : I.encoded);
}
const ModelConfig& Trainer::config() const { return impl_->cfg; }
const TrainOptions& Trainer::options() const { return impl_->opts; }
const std::vector<ParamInfo>& Trainer::param_info() const { return impl_->info; }
size_t Trainer::n_params() const { return impl_->n_params; }
float* Trainer::params() {
  impl_->packed_dirty = true;  // the caller may write
  return impl_->params.p;
}
const float* Trainer::params() const { return impl_->params.p; }
float* Trainer::grads() { return impl_->grads.p; }
const float* Trainer::grads() const { return impl_->grads.p; }
float* Trainer::param(const std::string& name) {
  impl_->packed_dirty = true;  // the caller may write
  for (const ParamInfo& p : impl_->info)
    if (p.name == name) return impl_->params.p + p.offset;
  return nullptr;
}
float* Trainer::grad(const std::string& name) {
  for (const ParamInfo& p : impl_->info)
    if (p.name == name) return impl_->grads.p + p.offset;
  return nullptr;
}
uint64_t Trainer::steps() const { return impl_->steps; }
uint32_t Trainer::n_threads() const { return static_cast<uint32_t>(impl_->pool->n_threads()); }

size_t Trainer::memory_bytes() const {
  const Impl& I = *impl_;
  const size_t floats = 4 * I.n_params + I.wpack.n + I.acts.n + I.shard_scratch.n + I.shard_grads.n +
                        I.cls_logits.n + I.cls_probs.n;
  const size_t doubles = I.row_loss.n + I.norm_parts.n + I.cls_loss.n;
  const size_t ints = I.tok.n + I.tgt.n + I.labels.n + I.last.n;
  return floats * sizeof(float) + doubles * sizeof(double) + ints * sizeof(int32_t) + I.masks.n;
}

ModelSpec Trainer::to_spec() const {
  const Impl& I = *impl_;
  ModelSpec s;
  s.config = I.cfg;
  for (const ParamInfo& p : I.info) {
    TensorData t;
    t.name = p.name;
    t.shape = p.shape;
    t.dtype = DType::kF32;
    t.data.resize(p.size * sizeof(float));
    std::memcpy(t.data.data(), I.params.p + p.offset, t.data.size());
    s.tensors.push_back(std::move(t));
  }
  s.metadata["trainer"] = "ember";
  s.metadata["train.steps"] = std::to_string(I.steps);
  return s;
}

// State file: magic, version, shape hash, n_params, steps, forwards, then m and v (n_params f32 each),
// then an FNV-1a checksum of everything before it. Little-endian (x86-64, aarch64).
Status Trainer::save_state(const std::string& path) const {
  const Impl& I = *impl_;
  std::vector<uint8_t> buf;
  auto put = [&](const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf.insert(buf.end(), b, b + n);
  };
  const uint32_t version = kStateVersion, reserved = 0;
  const uint64_t hash = I.shape_hash(), n = I.n_params;
  put(kStateMagic, 8);
  put(&version, 4);
  put(&reserved, 4);
  put(&hash, 8);
  put(&n, 8);
  put(&I.steps, 8);
  put(&I.forwards, 8);
  put(I.m.p, n * sizeof(float));
  put(I.v.p, n * sizeof(float));
  const uint64_t sum = fnv1a(0xcbf29ce484222325ull, buf.data(), buf.size());
  put(&sum, 8);
  return write_file_atomic(path, buf.data(), buf.size());
}

Status Trainer::load_state(const std::string& path) {
  Impl& I = *impl_;
  const size_t n = I.n_params, want = 48 + 2 * n * sizeof(float) + 8;
  auto read = read_file(path, want + 1);  // one byte more than a state of this model: "trailing bytes" below
  if (!read.ok()) return read.status().with_context("optimizer state");
  const std::string& buf = read.value();
  if (buf.size() < 48 || std::memcmp(buf.data(), kStateMagic, 8) != 0)
    return invalid_file(path + ": not an ember optimizer state file");
  uint32_t version;
  uint64_t hash, count, steps, forwards, sum;
  std::memcpy(&version, &buf[8], 4);
  std::memcpy(&hash, &buf[16], 8);
  std::memcpy(&count, &buf[24], 8);
  std::memcpy(&steps, &buf[32], 8);
  std::memcpy(&forwards, &buf[40], 8);
  if (version != kStateVersion) return invalid_file(path + ": unsupported optimizer state version " + std::to_string(version));
  if (hash != I.shape_hash() || count != n)
    return invalid_file(path + ": optimizer state belongs to a model of another shape (" + std::to_string(count) +
                        " parameters, this model has " + std::to_string(n) + ")");
  if (buf.size() != want) return invalid_file(path + ": optimizer state is truncated or has trailing bytes");
  std::memcpy(&sum, &buf[want - 8], 8);
  if (sum != fnv1a(0xcbf29ce484222325ull, buf.data(), want - 8)) return invalid_file(path + ": optimizer state checksum mismatch");
  std::memcpy(I.m.p, &buf[48], n * sizeof(float));
  std::memcpy(I.v.p, &buf[48 + n * sizeof(float)], n * sizeof(float));
  I.steps = steps;
  I.forwards = forwards;
  return Status::Ok();
}

}  // namespace ember
