// Float ops of the GPT as forward/backward pairs (llm.c style), the building blocks of train::Trainer.
// Layer norm, activations, softmax and residual adds run on the same kernel table (kernels/kernels.h)
// as the runtime session, attention on the runtime's f32 attention (kernels/attention.h), the linear
// layers' forward on the runtime's XNNPACK operator: the float runtime reproduces the trainer's logits
// bit for bit. The gradient products run on the table's f32 GEMM (kernels/gemm_f32.h).
//
// Conventions: N = B * T rows (tokens), row-major activations; weights [out, in]; `d*` are gradients.
// Parameter gradients are always accumulated (+=), so gradient accumulation over micro-batches and the
// tied embedding / LM head just work. Input gradients are written (=) or accumulated as the
// `accumulate` argument says; the residual stream uses accumulation to add its two paths.
// Every reduction runs in a fixed order, independent of the number of threads.
// Thread safety: reentrant; each call uses only its arguments (pool may be nullptr).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/threadpool.h"
#include "ember/config.h"
#include "ember/status.h"
#include "kernels/kernels.h"

namespace ember {
namespace train {

struct OpContext {
  ThreadPool* pool = nullptr;
  const Kernels* K = nullptr;
  float* pack = nullptr;     // GEMM packing scratch: gemm_pack_floats(k, n) of every gradient product run
                             // without pre-packed operands (dW: k = rows, n = in)
  float* scratch = nullptr;  // layernorm_backward_scratch_floats / attention_scratch_floats of the calls
};

// out[b, t] = wte[tokens[b, t]] + wpe[t].                                 out (B, T, C)
void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, size_t B, size_t T,
                       size_t C);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, size_t B, size_t T,
                        size_t C);

// y = (x - mean) * rstd * g + b per row; saves mean and rstd (N) for the backward.
void layernorm_forward(const OpContext& ctx, float* out, float* mean, float* rstd, const float* inp, const float* g,
                       const float* b, size_t N, size_t C, float eps);
// dg and db sum over rows in fixed chunks (partial sums in ctx.scratch), then chunk by chunk.
void layernorm_backward(const OpContext& ctx, float* dinp, bool accumulate, float* dg, float* db, const float* dout,
                        const float* inp, const float* g, const float* mean, const float* rstd, size_t N, size_t C);
size_t layernorm_backward_scratch_floats(size_t N, size_t C);

// out (N, OC) = inp (N, IC) w^T + b;  w (OC, IC), b (OC) or nullptr. XNNPACK's fully-connected
// operator, as the runtime's float linear layers (kernels/xnn/linear_xnn.h): created per call, so it
// packs w right before the run that reads it (operators packed once per step would be needed once per
// data-parallel shard, an operator binding its buffers when it runs: measured 22% slower on nanoGPT's
// step, docs/training.md). Fails only when XNNPACK cannot allocate.
Status linear_forward(const OpContext& ctx, float* out, const float* inp, const float* w, const float* b, size_t N,
                      size_t IC, size_t OC);
// Packs w (OC, IC) as the input gradient's B operand (gemm_pack_floats(OC, IC) floats).
void pack_linear_weight(const float* w, size_t IC, size_t OC, float* w_packed_dx);
// dinp (N, IC) [+]= dout w (skipped when dinp is nullptr); dw += dout^T inp; db += column sums of dout,
// on kernels/gemm_f32.h. w_packed_dx: w packed by pack_linear_weight, or nullptr to pack into ctx.pack.
// dW packs inp into ctx.pack.
void linear_backward(const OpContext& ctx, float* dinp, bool accumulate, float* dw, float* db, const float* dout,
                     const float* inp, const float* w, size_t N, size_t IC, size_t OC,
                     const float* w_packed_dx = nullptr);

// Causal multi-head self-attention over qkv (B, T, 3C) laid out [q | k | v], heads contiguous in each.
// att (B, H, T, T): softmax probabilities (row t: s <= t, zero beyond). mask (B, H, T, T) or nullptr:
// attention dropout, kept entries scaled by 1 / (1 - p).                  out (B, T, C)
// Per (sequence, head): the forward is the runtime's prefill attention, attention_f32_queries
// (kernels/attention.h) over the head's keys and values; the backward's four products run on the same
// table kernels, scores_f32 and wsum_rows_f32.
void attention_forward(const OpContext& ctx, float* out, float* att, const float* qkv, const uint8_t* mask,
                       float p_drop, size_t B, size_t T, size_t C, size_t H);
// dqkv (B, T, 3C) = gradient (written).
void attention_backward(const OpContext& ctx, float* dqkv, const float* dout, const float* qkv, const float* att,
                        const uint8_t* mask, float p_drop, size_t B, size_t T, size_t C, size_t H);
size_t attention_scratch_floats(size_t B, size_t T, size_t C, size_t H);

// out = act(inp) elementwise (n). The backward reads both (GELU's derivative uses out / inp).
void activation_forward(const OpContext& ctx, Activation act, float* out, const float* inp, size_t n);
// dinp = act'(inp) * dout (written); dinp may alias dout.
void activation_backward(const OpContext& ctx, Activation act, float* dinp, const float* dout, const float* inp,
                         const float* out, size_t n);

// Dropout with a counter-based hash: element i is kept iff hash(key, i) >= p, so masks depend only on
// (key, i), never on threads or call order. mask[i] = 1 (kept) or 0; kept values scale by 1 / (1 - p).
// `first`: index of mask[0] in the whole tensor (a shard's masks equal the unsharded ones).
void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t key, uint64_t first = 0);
void dropout_apply(float* x, const uint8_t* mask, size_t n, float p);  // forward, in place; backward alike
uint64_t dropout_key(uint64_t seed, uint64_t counter, uint64_t site);

// Mean cross-entropy over rows whose target is >= 0 (negative targets are ignored, like PyTorch's
// ignore_index). probs (N, V) = softmax(logits). Per-row log-sum-exp in double. Returns the mean
// (0 when no row counts) and the number of counted rows in *count.
double crossentropy_forward(const OpContext& ctx, float* probs, double* row_loss, const float* logits,
                            const int32_t* targets, size_t N, size_t V, size_t* count);
// dlogits (N, V) = scale * (probs - onehot(target)) for counted rows, 0 for ignored rows (written).
void crossentropy_backward(const OpContext& ctx, float* dlogits, const float* probs, const int32_t* targets, size_t N,
                           size_t V, float scale);

}  // namespace train
}  // namespace ember
