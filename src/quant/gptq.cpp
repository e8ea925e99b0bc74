// GPTQ for int4 (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers"): each linear layer's weights are quantized one input channel at a time,
// and the rounding error of each channel is spread over the channels not yet quantized, weighted by the
// inverse Hessian of the layer's inputs (H = X^T X over calibration tokens), so the layer's output on
// such inputs changes as little as possible. The group scales are fixed first (static groups: the
// least-squares choice of quantize_rows_q4 on the original weights), then the channels are quantized in
// order of decreasing H_cc ("act order").
//
// One pass of the float model over the calibration tokens collects every layer's H through the session's
// linear tap. Per layer: damp H (1% of its mean diagonal), permute it to act order, U = the upper
// Cholesky factor of H^-1, then every row independently (rows in batches, batches over threads): for
// position p (channel c), q = round(w_p / s), e = (w_p - s q) / U[p][p], w_j -= e U[p][j] for j > p.
// A tied embedding (wte, also the LM head) is rounded to nearest: GPTQ would fit it to the LM head's
// inputs at the expense of the embedding lookup.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "core/threadpool.h"
#include "ember/quantize.h"
#include "format/q4.h"
#include "quant/q4_quant.h"

namespace ember {
namespace {

// sum_k a[k] b[k] in 32 interleaved partial sums (independent dependency chains, enough to keep a
// core's vector adders busy: 4 AVX-512 or 8 AVX2 registers), in a fixed order, so the result is the same
// on every run and machine. The factorizations' inner loop: on x86-64 (GCC) also compiled for AVX2 and
// AVX-512, chosen at load time; vectorizing the partial sums changes no bit.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
double dot(const double* a, const double* b, size_t n) {
  constexpr size_t kSums = 32;
  double s[kSums] = {};
  size_t k = 0;
  for (; k + kSums <= n; k += kSums)
    for (size_t u = 0; u < kSums; ++u) s[u] += a[k + u] * b[k + u];
  for (; k < n; ++k) s[k % kSums] += a[k] * b[k];
  for (size_t w = kSums / 2; w > 0; w /= 2)
    for (size_t u = 0; u < w; ++u) s[u] += s[u + w];
  return s[0];
}

// Loops smaller than this many multiply-adds run on the caller: a parallel loop costs microseconds.
constexpr size_t kParallelWork = 1 << 16;
ThreadPool* pool_for(ThreadPool* pool, size_t work) { return work >= kParallelWork ? pool : nullptr; }

// Lower Cholesky factor of the symmetric positive definite a (n x n, row-major, in place: the lower
// triangle becomes L, the upper is zeroed). False if a pivot is not positive. Entry (i, j), j < i:
// (a_ij - L_i[0, j) . L_j[0, j)) / L_jj, in blocks of kBlock columns: the block's own rows first, then
// every row below (over the pool) takes the block's columns one after another, so its row stays in L1
// and the block's rows in L2, where a column at a time would read the whole triangle from memory for
// each column. The same operations in the same order as column by column.
bool cholesky_lower(std::vector<double>& a, size_t n, ThreadPool* pool) {
  constexpr size_t kBlock = 64;
  std::vector<double> inv(n);  // 1 / L_jj
  auto row_block = [&](size_t i, size_t j0, size_t j1) {
    double* ri = &a[i * n];
    for (size_t j = j0; j < j1; ++j) ri[j] = (ri[j] - dot(ri, &a[j * n], j)) * inv[j];
  };
  for (size_t j0 = 0; j0 < n; j0 += kBlock) {
    const size_t j1 = std::min(n, j0 + kBlock);
    for (size_t j = j0; j < j1; ++j) {
      row_block(j, j0, j);
      double* rj = &a[j * n];
      const double d = rj[j] - dot(rj, rj, j);
      if (!(d > 0.0)) return false;
      rj[j] = std::sqrt(d);
      inv[j] = 1.0 / rj[j];
    }
    const size_t below = n - j1;
    parallel_for_tiles(pool_for(pool, below * j1 * (j1 - j0)), below, 16, [&](size_t i0, size_t count) {
      for (size_t i = j1 + i0; i < j1 + i0 + count; ++i) row_block(i, j0, j1);
    });
  }
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) a[i * n + j] = 0.0;
  return true;
}

// U with H^-1 = U^T U (upper triangular, positive diagonal: the upper Cholesky factor of H^-1) for the
// symmetric positive definite H (n x n), without forming H^-1: with J the order reversal, the lower
// Cholesky factor L of J H J gives H = R R^T for the upper R = J L J, so H^-1 = (R^-1)^T R^-1 and
// U = R^-1 = J L^-1 J. One factorization, then the columns of L^-1 by forward substitution (L x = e_m:
// x_m = 1 / L_mm, x_r = -L_r[m, r) . x[m, r) / L_rr), kColumns of them per task (over the pool), row
// by row, so each row of L is read once per task. False if H is not (numerically) positive definite.
bool inverse_upper_factor(const std::vector<double>& H, size_t n, std::vector<float>& U, ThreadPool* pool) {
  std::vector<double> A(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) A[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)];
  if (!cholesky_lower(A, n, pool)) return false;
  U.assign(n * n, 0.0f);
  constexpr size_t kColumns = 32;
  parallel_for_tiles(pool_for(pool, n * n * n / 6), n, kColumns, [&](size_t m0, size_t count) {
    std::vector<double> X(count * n);  // X[k * n + r]: column m0 + k of L^-1
    for (size_t r = m0; r < n; ++r) {
      const double* lr = &A[r * n];
      for (size_t k = 0; k < count && m0 + k <= r; ++k) {
        const size_t m = m0 + k;
        double* x = &X[k * n];
        x[r] = m == r ? 1.0 / lr[r] : -dot(lr + m, x + m, r - m) / lr[r];
        // U[i][c] = (L^-1)[n-1-i][n-1-c]: U's column c = n-1-m, row i = n-1-r.
        U[(n - 1 - r) * n + (n - 1 - m)] = static_cast<float>(x[r]);
      }
    }
  });
  return true;
}

// GPTQ's column loop for W (out x in) and U, both in the permuted channel order (position p holds
// channel perm[p]), with the scales given (out x in / group, chosen from the original weights); q is
// written in the original order. Rows are independent: batches of rows over the pool.
void gptq_rows(std::vector<float>& W, size_t out, size_t in, size_t group, const std::vector<float>& U,
               const std::vector<size_t>& perm, const uint16_t* scales, int8_t* q, ThreadPool* pool) {
  constexpr size_t kRows = 16;  // rows per batch: each row of U is read once per batch
  parallel_for_tiles(pool, out, kRows, [&](size_t r0, size_t count) {
    float err[kRows];
    const size_t r1 = r0 + count;
    for (size_t p = 0; p < in; ++p) {
      const size_t c = perm[p];
      const float d = U[p * in + p];
      for (size_t r = r0; r < r1; ++r) {
        const float w = W[r * in + p], s = f16_to_f32(scales[r * (in / group) + c / group]);
        const int8_t v = s > 0.0f ? q4_round(w, 1.0f / s) : int8_t{0};
        q[r * in + c] = v;
        err[r - r0] = (w - s * v) / d;
      }
      const float* u = &U[p * in];
      for (size_t r = r0; r < r1; ++r) {
        float* wr = &W[r * in];
        const float e = err[r - r0];
        for (size_t j = p + 1; j < in; ++j) wr[j] -= e * u[j];
      }
    }
  });
}

// The lower triangle of h (in x in) += x^T x for x (rows x in): entry (i, j) is the dot product of columns
// i and j of x, which become rows of xt. Rows i of h in tiles of kTile (over the pool): a tile keeps its
// kTile columns in L1 and reads each other column once, instead of streaming h through memory for every
// token (a rank-1 update per row of x) or xt for every i.
void accumulate_hessian(const float* x, size_t rows, size_t in, std::vector<double>& h, std::vector<double>& xt,
                        ThreadPool* pool) {
  constexpr size_t kTile = 8;
  xt.resize(in * rows);
  for (size_t r = 0; r < rows; ++r)
    for (size_t i = 0; i < in; ++i) xt[i * rows + r] = x[r * in + i];
  parallel_for_tiles(pool_for(pool, in * in * rows / 2), in, kTile, [&](size_t i0, size_t count) {
    for (size_t j = 0; j < i0 + count; ++j) {
      const double* xj = &xt[j * rows];
      for (size_t i = std::max(i0, j); i < i0 + count; ++i) h[i * in + j] += dot(&xt[i * rows], xj, rows);
    }
  });
}

// gptq_quantize_q4 on a pool (quantize_model_gptq runs every layer on one).
Status gptq_quantize_q4_on(const float* w, size_t out, size_t in, size_t group, const double* hessian, int8_t* q,
                           uint16_t* scales, ThreadPool& pool) {
  if (group == 0 || in % group != 0) return invalid_argument("gptq: group does not divide the rows");
  std::vector<float> W(w, w + out * in);
  std::vector<double> H(hessian, hessian + in * in);
  double mean = 0.0;
  for (size_t i = 0; i < in; ++i) {
    if (H[i * in + i] == 0.0) {  // a dead input: it never varies, its weights do not matter
      H[i * in + i] = 1.0;
      for (size_t r = 0; r < out; ++r) W[r * in + i] = 0.0f;
    }
    mean += H[i * in + i];
  }
  mean /= static_cast<double>(in);
  // Static groups: every group's scale from the original weights (q4_group_scale's least-squares
  // choice); then the channels in order of decreasing H_cc ("act order": the most active inputs first,
  // while the most weights remain to absorb their errors). Measured on the golden models (int4, groups
  // of 16, int8 embedding): perplexity +0.8 / +0.9 / +1.8 / +1.5% over float, against +1.1 / +0.2 / +3.4
  // / +1.6% in channel order and +3.0 / +2.7 / +11.5 / +4.7% rounding each group to nearest.
  {
    std::vector<int8_t> tmp(group);
    for (size_t r = 0; r < out; ++r)
      for (size_t g = 0; g < in / group; ++g)
        scales[r * (in / group) + g] = q4_group_scale(&W[r * in + g * group], group, tmp.data());
  }
  std::vector<size_t> perm(in);
  for (size_t i = 0; i < in; ++i) perm[i] = i;
  std::stable_sort(perm.begin(), perm.end(), [&](size_t a, size_t b) { return H[a * in + a] > H[b * in + b]; });
  for (double damp = 0.01;; damp *= 10.0) {  // more damping if H is numerically singular
    std::vector<double> Hd = H;  // damped
    for (size_t i = 0; i < in; ++i) Hd[i * in + i] += damp * mean;
    std::vector<float> U;
    std::vector<double> Hp(in * in);
    for (size_t i = 0; i < in; ++i)
      for (size_t j = 0; j < in; ++j) Hp[i * in + j] = Hd[perm[i] * in + perm[j]];
    if (inverse_upper_factor(Hp, in, U, &pool)) {
      std::vector<float> Wp(out * in);
      for (size_t r = 0; r < out; ++r)
        for (size_t p = 0; p < in; ++p) Wp[r * in + p] = W[r * in + perm[p]];
      gptq_rows(Wp, out, in, group, U, perm, scales, q, &pool);
      return Status::Ok();
    }
    if (damp > 1e3) return internal_error("gptq: the input Hessian is not positive definite even after damping");
  }
}

}  // namespace

Status gptq_quantize_q4(const float* w, size_t out, size_t in, size_t group, const double* hessian, int8_t* q,
                        uint16_t* scales, uint32_t threads) {
  ThreadPool pool(std::max<uint32_t>(1, threads));
  return gptq_quantize_q4_on(w, out, in, group, hessian, q, scales, pool);
}

Status quantize_model_gptq(ModelSpec& spec, const QuantizeOptions& opts, const std::vector<int32_t>& tokens, size_t ctx,
                           uint32_t threads, const GptqProgressCallback& progress) {
  EMBER_RETURN_IF_ERROR(spec.validate());
  if (tokens.size() < 2) return invalid_argument("gptq: fewer than 2 calibration tokens");
  if (ctx == 0) return invalid_argument("gptq: calibration window of 0 tokens");
  auto target = [&](const std::string& name) {
    return name == "wte" || name == "lm_head.weight" ? opts.embedding_type : opts.type;
  };
  // 1. Each int4 layer's input Hessian H = sum x x^T over the calibration tokens, from the float model.
  std::map<std::string, std::vector<double>> H;  // by weight tensor name
  ThreadPool pool(std::max<uint32_t>(1, threads));  // the Hessians (between the session's loops) and GPTQ
  {
    EMBER_ASSIGN_OR_RETURN(std::shared_ptr<const Model> fm, load_model_spec(spec, "gptq float model"));
    const ModelConfig& c = fm->config();
    for (int32_t t : tokens)
      if (t < 0 || static_cast<uint32_t>(t) >= c.n_vocab)
        return invalid_argument("gptq: calibration token " + std::to_string(t) + " is outside the vocabulary");
    SessionOptions so;
    so.n_threads = threads;
    so.n_batch = std::min<size_t>(ctx, 512);  // the tap's blocks of rows: one pass over H per block
    std::vector<double> xt;
    so.linear_tap = [&](const LinearTap& t) {
      const std::string name = t.layer >= c.n_layer ? (c.tied_lm_head ? "wte" : "lm_head.weight")
                                                    : "h." + std::to_string(t.layer) + "." + t.name + ".weight";
      if (!is_quantized_tensor(name, opts) || target(name) != DType::kI4 || name == "wte") return;
      std::vector<double>& h = H[name];
      if (h.empty()) h.assign(t.in * t.in, 0.0);
      accumulate_hessian(t.x, t.rows, t.in, h, xt, &pool);
    };
    EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, Session::create(fm, so));
    const Session::LogitsCallback every = [](size_t, const float*) {};  // the LM head on every row
    for (size_t i = 0; i < tokens.size(); i += ctx) {
      s->reset();
      EMBER_RETURN_IF_ERROR(s->prefill(tokens.data() + i, std::min(ctx, tokens.size() - i), &every));
    }
  }
  // 2. GPTQ for those layers; quantize_model then does the rest (and leaves these as they are).
  size_t done = 0;
  if (progress) progress(0, H.size(), "");
  for (TensorData& t : spec.tensors) {
    auto it = H.find(t.name);
    if (it == H.end()) continue;
    const size_t out = t.shape[0], in = t.shape[1];
    if (in % opts.group != 0) continue;  // quantize_model names the problem
    std::vector<double>& h = it->second;
    for (size_t i = 0; i < in; ++i)
      for (size_t j = 0; j < i; ++j) h[j * in + i] = h[i * in + j];
    const std::vector<float> f = tensor_values(t);
    for (float v : f)
      if (!std::isfinite(v)) return invalid_argument("quantize: tensor '" + t.name + "' holds a non-finite value");
    std::vector<int8_t> q(out * in);
    std::vector<uint16_t> sc(out * (in / opts.group));
    Status st = gptq_quantize_q4_on(f.data(), out, in, opts.group, h.data(), q.data(), sc.data(), pool);
    if (!st.ok()) return st.with_context("tensor '" + t.name + "'");
    h = std::vector<double>();
    t.dtype = DType::kI4;
    t.group = opts.group;
    t.scales.clear();
    t.data.assign(q4_bytes(out, in, opts.group), 0);
    q4_pack(q.data(), sc.data(), out, in, opts.group, t.data.data());
    if (progress) progress(++done, H.size(), t.name);
  }
  return quantize_model(spec, opts);
}

}  // namespace ember
