#include "train/ops.h"

#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/gemm_f32.h"
#include "kernels/xnn/linear_xnn.h"
#include "train/train_util.h"

namespace ember {
namespace train {

namespace {

constexpr size_t kRowTile = 16;      // rows per task for row-wise ops
constexpr size_t kElemTile = 16384;  // elements per task for elementwise ops

template <class F>
void parallel_tiles(ThreadPool* pool, size_t n, size_t tile, const F& f) {
  parallel_for_tiles(pool, n, tile, f);
}

}  // namespace

// ---- embedding ------------------------------------------------------------------------------------------

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, size_t B, size_t T,
                       size_t C) {
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < T; ++t) {
      float* o = out + (b * T + t) * C;
      const float* e = wte + static_cast<size_t>(tokens[b * T + t]) * C;
      const float* p = wpe + t * C;
      for (size_t i = 0; i < C; ++i) o[i] = e[i] + p[i];
    }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, size_t B, size_t T,
                        size_t C) {
  // Serial: rows with the same token add into the same dwte row, in a fixed order.
  for (size_t b = 0; b < B; ++b)
    for (size_t t = 0; t < T; ++t) {
      const float* d = dout + (b * T + t) * C;
      float* de = dwte + static_cast<size_t>(tokens[b * T + t]) * C;
      float* dp = dwpe + t * C;
      for (size_t i = 0; i < C; ++i) {
        de[i] += d[i];
        dp[i] += d[i];
      }
    }
}

// ---- layer norm -----------------------------------------------------------------------------------------

void layernorm_forward(const OpContext& ctx, float* out, float* mean, float* rstd, const float* inp, const float* g,
                       const float* b, size_t N, size_t C, float eps) {
  parallel_tiles(ctx.pool, N, kRowTile, [&](size_t r0, size_t nr) {
    for (size_t r = r0; r < r0 + nr; ++r) {
      const float* x = inp + r * C;
      // Statistics in double as the kernels do; the output itself comes from the kernel table.
      double m = 0.0;
      for (size_t i = 0; i < C; ++i) m += x[i];
      m /= static_cast<double>(C);
      double v = 0.0;
      for (size_t i = 0; i < C; ++i) v += (x[i] - m) * (x[i] - m);
      v /= static_cast<double>(C);
      mean[r] = static_cast<float>(m);
      rstd[r] = static_cast<float>(1.0 / std::sqrt(v + eps));
      ctx.K->layernorm_f32(x, g, b, out + r * C, C, eps);
    }
  });
}

size_t layernorm_backward_scratch_floats(size_t N, size_t C) { return (N + kRowTile - 1) / kRowTile * 2 * C; }

void layernorm_backward(const OpContext& ctx, float* dinp, bool accumulate, float* dg, float* db, const float* dout,
                        const float* inp, const float* g, const float* mean, const float* rstd, size_t N, size_t C) {
  // Per row: dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = dy * g; per chunk of rows the
  // partial sums of dy * xhat and dy (the gain and bias gradients), reduced in chunk order below.
  float* part = ctx.scratch;
  parallel_tiles(ctx.pool, N, kRowTile, [&](size_t r0, size_t nr) {
    float* pg = part + (r0 / kRowTile) * 2 * C;
    float* pb = pg + C;
    for (size_t i = 0; i < C; ++i) pg[i] = pb[i] = 0.0f;
    for (size_t r = r0; r < r0 + nr; ++r)
      ctx.K->layernorm_backward_f32(dinp + r * C, accumulate, pg, pb, dout + r * C, inp + r * C, g, mean[r], rstd[r], C);
  });
  for (size_t r0 = 0; r0 < N; r0 += kRowTile) {
    const float* pg = part + (r0 / kRowTile) * 2 * C;
    ctx.K->add_f32(pg, dg, C);
    ctx.K->add_f32(pg + C, db, C);
  }
}

// ---- linear ---------------------------------------------------------------------------------------------

void pack_linear_weight(const float* w, size_t IC, size_t OC, float* w_packed_dx) {
  gemm_pack_b(OC, IC, MatRef{w, IC, 1}, w_packed_dx);
}

Status linear_forward(const OpContext& ctx, float* out, const float* inp, const float* w, const float* b, size_t N,
                      size_t IC, size_t OC) {
  EMBER_ASSIGN_OR_RETURN(LinearF32 op, LinearF32::create(w, b, IC, OC, "trainer: linear layer"));
  return op.run(N, inp, out, ctx.pool ? ctx.pool->xnnpack_pool() : nullptr);
}

void linear_backward(const OpContext& ctx, float* dinp, bool accumulate, float* dw, float* db, const float* dout,
                     const float* inp, const float* w, size_t N, size_t IC, size_t OC, const float* w_packed_dx) {
  const Kernels& K = *ctx.K;
  if (dinp) {
    if (w_packed_dx) gemm_f32_packed(ctx.pool, K, N, IC, OC, MatRef{dout, OC, 1}, w_packed_dx, nullptr, dinp, IC, accumulate);
    else gemm_f32(ctx.pool, K, N, IC, OC, MatRef{dout, OC, 1}, MatRef{w, IC, 1}, nullptr, dinp, IC, accumulate, ctx.pack);
  }
  // dW rows are output channels; the bias gradient (row sums of dout^T) comes with them.
  gemm_f32(ctx.pool, K, OC, IC, N, MatRef{dout, 1, OC}, MatRef{inp, IC, 1}, nullptr, dw, IC, true, ctx.pack, db);
}

// ---- attention ------------------------------------------------------------------------------------------

namespace {
// Per (sequence, head) task: the head's q, k, v and output gradient as contiguous (T, D) rows, and three
// (T, T) blocks (dropped probabilities, their gradient, a transpose).
struct AttnScratch {
  float *q, *k, *v, *dy, *pd, *dp, *tr;
};
size_t attn_task_floats(size_t T, size_t D) { return 4 * T * D + 3 * T * T; }
AttnScratch attn_scratch(float* base, size_t task, size_t T, size_t D) {
  float* p = base + task * attn_task_floats(T, D);
  const size_t td = T * D, tt = T * T;
  return {p, p + td, p + 2 * td, p + 3 * td, p + 4 * td, p + 4 * td + tt, p + 4 * td + 2 * tt};
}
// dst (T, D) = the rows of src, `ld` floats apart.
void gather_rows(float* dst, const float* src, size_t ld, size_t T, size_t D) {
  for (size_t t = 0; t < T; ++t) std::memcpy(dst + t * D, src + t * ld, D * sizeof(float));
}
// dst = src^T for (T, T), the causal (lower) triangle only: dst[s][t] = src[t][s] for s <= t.
void transpose_lower(float* dst, const float* src, size_t T) {
  for (size_t t = 0; t < T; ++t)
    for (size_t s = 0; s <= t; ++s) dst[s * T + t] = src[t * T + s];
}
}  // namespace

size_t attention_scratch_floats(size_t B, size_t T, size_t C, size_t H) { return B * H * attn_task_floats(T, C / H); }

void attention_forward(const OpContext& ctx, float* out, float* att, const float* qkv, const uint8_t* mask,
                       float p_drop, size_t B, size_t T, size_t C, size_t H) {
  const size_t D = C / H, C3 = 3 * C;
  const float keep_scale = mask ? 1.0f / (1.0f - p_drop) : 1.0f;
  const Kernels& K = *ctx.K;
  parallel_for_2d(ctx.pool, B, H, [&](size_t b, size_t h) {
    const size_t task = b * H + h;
    const AttnScratch S = attn_scratch(ctx.scratch, task, T, D);
    const float* q = qkv + b * T * C3 + h * D;  // (T, D), rows 3C apart; k and v follow at +C, +2C
    float* a = att + task * T * T;              // (T, T)
    gather_rows(S.k, q + C, C3, T, D);
    gather_rows(S.v, q + 2 * C, C3, T, D);
    // The runtime's prefill over an empty cache: query t sees positions 0..t.
    AttentionF32Queries args{q, C3, S.k, S.v, 1, T, D, a, T, out + b * T * C + h * D, C, attention_chunk_rows(D)};
    attention_f32_queries_probs(K, args);
    for (size_t t = 0; t < T; ++t)
      for (size_t s = t + 1; s < T; ++s) a[t * T + s] = 0.0f;
    if (mask) {
      const uint8_t* m = mask + task * T * T;
      for (size_t i = 0; i < T * T; ++i) S.pd[i] = m[i] ? a[i] * keep_scale : 0.0f;
      args.scores = S.pd;
    }
    attention_f32_queries_wsum(K, args);
  });
}

void attention_backward(const OpContext& ctx, float* dqkv, const float* dout, const float* qkv, const float* att,
                        const uint8_t* mask, float p_drop, size_t B, size_t T, size_t C, size_t H) {
  const size_t D = C / H, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float keep_scale = mask ? 1.0f / (1.0f - p_drop) : 1.0f;
  const Kernels& K = *ctx.K;
  parallel_for_2d(ctx.pool, B, H, [&](size_t b, size_t h) {
    // This task owns the head-h slices of the q, k and v gradients of sequence b.
    const size_t task = b * H + h;
    const AttnScratch S = attn_scratch(ctx.scratch, task, T, D);
    const float* q = qkv + b * T * C3 + h * D;
    float* dq = dqkv + b * T * C3 + h * D;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    gather_rows(S.q, q, C3, T, D);
    gather_rows(S.k, q + C, C3, T, D);
    gather_rows(S.v, q + 2 * C, C3, T, D);
    gather_rows(S.dy, dout + b * T * C + h * D, C, T, D);
    const float* a = att + task * T * T;
    const uint8_t* m = mask ? mask + task * T * T : nullptr;
    const float* p = a;
    if (m) {
      for (size_t i = 0; i < T * T; ++i) S.pd[i] = m[i] ? a[i] * keep_scale : 0.0f;
      p = S.pd;
    }
    // out_t = sum_{s <= t} P'[t][s] v_s:  dv_s = sum_{t >= s} P'[t][s] dy_t,  dP'[t][s] = dy_t . v_s.
    transpose_lower(S.tr, p, T);
    for (size_t s = 0; s < T; ++s) {
      float* o = dv + s * C3;
      for (size_t i = 0; i < D; ++i) o[i] = 0.0f;
      K.wsum_rows_f32(S.tr + s * T + s, S.dy + s * D, T - s, D, o);
    }
    for (size_t t = 0; t < T; ++t) K.scores_f32(S.dy + t * D, S.v, t + 1, D, 1.0f, S.dp + t * T);
    // Through dropout and softmax: dS_s = scale * P_s (dP_s - sum_r P_r dP_r), dP = dP' * mask factor.
    for (size_t t = 0; t < T; ++t) {
      float* d = S.dp + t * T;
      const float* pr = a + t * T;
      if (m)
        for (size_t s = 0; s <= t; ++s) d[s] = m[t * T + s] ? d[s] * keep_scale : 0.0f;
      K.softmax_backward_f32(d, pr, t + 1, scale);
    }
    // s_t = q_t . k_s (scaled):  dq_t = sum_{s <= t} dS[t][s] k_s,  dk_s = sum_{t >= s} dS[t][s] q_t.
    for (size_t t = 0; t < T; ++t) {
      float* o = dq + t * C3;
      for (size_t i = 0; i < D; ++i) o[i] = 0.0f;
      K.wsum_rows_f32(S.dp + t * T, S.k, t + 1, D, o);
    }
    transpose_lower(S.tr, S.dp, T);
    for (size_t s = 0; s < T; ++s) {
      float* o = dk + s * C3;
      for (size_t i = 0; i < D; ++i) o[i] = 0.0f;
      K.wsum_rows_f32(S.tr + s * T + s, S.q + s * D, T - s, D, o);
    }
  });
}

// ---- activations ----------------------------------------------------------------------------------------

void activation_forward(const OpContext& ctx, Activation act, float* out, const float* inp, size_t n) {
  void (*f)(float*, size_t) = act == Activation::kGeluTanh  ? ctx.K->gelu_tanh_f32
                              : act == Activation::kGeluErf ? ctx.K->gelu_erf_f32
                                                            : ctx.K->relu_f32;
  parallel_tiles(ctx.pool, n, kElemTile, [&](size_t i0, size_t ni) {
    std::memcpy(out + i0, inp + i0, ni * sizeof(float));
    f(out + i0, ni);
  });
}

void activation_backward(const OpContext& ctx, Activation act, float* dinp, const float* dout, const float* inp,
                         const float* out, size_t n) {
  const auto f = act == Activation::kGeluTanh  ? ctx.K->gelu_tanh_backward_f32
                 : act == Activation::kGeluErf ? ctx.K->gelu_erf_backward_f32
                                               : ctx.K->relu_backward_f32;
  parallel_tiles(ctx.pool, n, kElemTile, [&](size_t i0, size_t ni) { f(dinp + i0, dout + i0, inp + i0, out + i0, ni); });
}

// ---- dropout --------------------------------------------------------------------------------------------

uint64_t dropout_key(uint64_t seed, uint64_t counter, uint64_t site) {
  return mix64(seed ^ mix64(counter * 0x100000001b3ull + site));
}

void dropout_mask(uint8_t* mask, size_t n, float p, uint64_t key, uint64_t first) {
  // Keep iff the top 24 bits of the hash, as a fraction of 2^24, are >= p.
  const uint64_t threshold = static_cast<uint64_t>(static_cast<double>(p) * 16777216.0);
  for (size_t i = 0; i < n; ++i) mask[i] = (mix64(key + first + i) >> 40) >= threshold ? 1 : 0;
}

void dropout_apply(float* x, const uint8_t* mask, size_t n, float p) {
  const float s = 1.0f / (1.0f - p);
  for (size_t i = 0; i < n; ++i) x[i] = mask[i] ? x[i] * s : 0.0f;
}

// ---- cross-entropy --------------------------------------------------------------------------------------

double crossentropy_forward(const OpContext& ctx, float* probs, double* row_loss, const float* logits,
                            const int32_t* targets, size_t N, size_t V, size_t* count) {
  parallel_tiles(ctx.pool, N, kRowTile, [&](size_t r0, size_t nr) {
    for (size_t r = r0; r < r0 + nr; ++r) {
      const float* l = logits + r * V;
      float* p = probs + r * V;
      std::memcpy(p, l, V * sizeof(float));
      ctx.K->softmax_f32(p, V);
      if (!targets || targets[r] < 0) {
        row_loss[r] = 0.0;
        continue;
      }
      row_loss[r] = log_sum_exp_f32(l, V) - l[targets[r]];
    }
  });
  size_t n = 0;
  double total = 0.0;
  for (size_t r = 0; r < N; ++r)
    if (targets && targets[r] >= 0) {
      total += row_loss[r];
      ++n;
    }
  *count = n;
  return n ? total / static_cast<double>(n) : 0.0;
}

void crossentropy_backward(const OpContext& ctx, float* dlogits, const float* probs, const int32_t* targets, size_t N,
                           size_t V, float scale) {
  parallel_tiles(ctx.pool, N, kRowTile, [&](size_t r0, size_t nr) {
    for (size_t r = r0; r < r0 + nr; ++r) {
      float* d = dlogits + r * V;
      if (targets[r] < 0) {
        std::memset(d, 0, V * sizeof(float));
        continue;
      }
      const float* p = probs + r * V;
      for (size_t i = 0; i < V; ++i) d[i] = scale * p[i];
      d[targets[r]] -= scale;
    }
  });
}

}  // namespace train
}  // namespace ember
