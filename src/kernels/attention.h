// Causal attention of one query over the cached positions of one head, for both KV cache types, composed
// from the kernel table (so it runs the table's ISA and is tested through it):
//
//   ember::attention_f32(K, q, k, v, n, d, scores, out);                        // f32 cache
//   ember::attention_f32_queries(K, {q, ldq, k, v, n0, nq, d, s, lds, out, ldo, chunk});  // nq queries at once
//   ember::attention_q8(K, {q, q8, k, k_scale, v, v_scale, n, d, scores, out});  // int8 cache
//
// f32 cache: s[j] = dot(q, k[j]) / sqrt(d), p = softmax(s), out = sum_j p[j] v[j] (scores_f32, softmax_f32,
// wsum_rows_f32: one call each per query and head, or per chunk of rows and query for a block of queries).
//
// int8 cache: every cached key and value row (d values of one layer, head and position) is stored as
// symmetric int8 with one f32 scale, by quantize_rows_q8: row = scale * q, |q| <= 127. The query is
// quantized the same way (scale sq, into the caller's scratch q8), then
//   s[j]   = (sq / sqrt(d)) * k_scale[j] * float(sum_i q8[i] k[j][i])    gemm_q8_tile with batch 1: the
//            integer dot product is exact, the epilogue is gemm_q8's fma(xs * ws[j], float(acc), 0)
//   p      = softmax(s)                                                  softmax_f32
//   out[i] = sum_j (p[j] * v_scale[j]) * float(v[j][i])                  wsum_rows_q8
// Every SIMD table returns the same bits (the integer sums are exact, softmax_f32 and wsum_rows_q8 are
// lane-for-lane the same on AVX2 and NEON); against the reference table only softmax_f32's stated error
// differs. Quantizing the query as well as the keys keeps q.k an exact int8 dot product (4x fewer
// bytes than f32 and no float summation order); its error is measured in tests/unit/test_kv_cache.cpp.
//
// n >= 1 positions; scores (n floats) is scratch and holds p on return; out (d floats) is overwritten.
// Allocates nothing; reentrant (the session runs one head and block of queries per task).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

namespace ember {

inline void attention_f32(const Kernels& K, const float* q, const float* k, const float* v, size_t n, size_t d,
                          float* scores, float* out) {
  K.scores_f32(q, k, n, d, 1.0f / std::sqrt(static_cast<float>(d)), scores);
  K.softmax_f32(scores, n);
  for (size_t i = 0; i < d; ++i) out[i] = 0.0f;
  K.wsum_rows_f32(scores, v, n, d, out);
}

// nq consecutive queries of one head (prefill), f32 cache: query i (i < nq) sees the cached positions
// 0 .. n0 + i - 1, n0 >= 1. The cached rows are visited in chunks of `chunk` rows, each chunk for every
// query in turn: a chunk of keys, and later of values, comes from L2 once for all nq queries instead of
// once per query. Every query gets exactly attention_f32's bits: scores_f32 is defined per row, softmax
// runs per query over its whole row, and wsum_rows_f32 accumulates in row order across the chunks.
struct AttentionF32Queries {
  const float* q;  // query i at q + i * ldq
  size_t ldq;
  const float* k;  // (n0 + nq - 1, d) cached keys and values, row-major
  const float* v;
  size_t n0, nq, d;
  float* scores;  // scratch: query i's n0 + i scores at scores + i * lds (its attention weights on return)
  size_t lds;
  float* out;  // query i's d outputs at out + i * ldo
  size_t ldo;
  size_t chunk;  // rows per chunk (>= 1); about 16 KiB of keys fits every L1
};

// The two halves of attention_f32_queries, for the trainer (which drops out attention weights between
// them): the scores and softmax of every query (a.v and a.out unused), then the weighted sums of the
// values by the weights in a.scores (a.q and a.k unused).
inline void attention_f32_queries_probs(const Kernels& K, const AttentionF32Queries& a) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(a.d));
  const size_t n_max = a.n0 + a.nq - 1;
  for (size_t c0 = 0; c0 < n_max; c0 += a.chunk)
    for (size_t i = 0; i < a.nq; ++i) {
      const size_t n = a.n0 + i;
      if (n > c0) K.scores_f32(a.q + i * a.ldq, a.k + c0 * a.d, std::min(c0 + a.chunk, n) - c0, a.d, scale, a.scores + i * a.lds + c0);
    }
  for (size_t i = 0; i < a.nq; ++i) K.softmax_f32(a.scores + i * a.lds, a.n0 + i);
}

inline void attention_f32_queries_wsum(const Kernels& K, const AttentionF32Queries& a) {
  const size_t n_max = a.n0 + a.nq - 1;
  for (size_t i = 0; i < a.nq; ++i)
    for (size_t j = 0; j < a.d; ++j) a.out[i * a.ldo + j] = 0.0f;
  for (size_t c0 = 0; c0 < n_max; c0 += a.chunk)
    for (size_t i = 0; i < a.nq; ++i) {
      const size_t n = a.n0 + i;
      if (n > c0)
        K.wsum_rows_f32(a.scores + i * a.lds + c0, a.v + c0 * a.d, std::min(c0 + a.chunk, n) - c0, a.d, a.out + i * a.ldo);
    }
}

inline void attention_f32_queries(const Kernels& K, const AttentionF32Queries& a) {
  attention_f32_queries_probs(K, a);
  attention_f32_queries_wsum(K, a);
}

// Rows per chunk for attention_f32_queries: about 16 KiB of keys, which fits every L1.
inline size_t attention_chunk_rows(size_t d) { return std::max<size_t>(8, 16384 / (d * sizeof(float))); }

struct AttentionQ8Args {
  const float* q;        // (d) the query, f32
  int8_t* q8;            // (d) scratch: the quantized query
  const int8_t* k;       // (n, d) cached keys, int8 rows
  const float* k_scale;  // (n)
  const int8_t* v;       // (n, d) cached values, int8 rows
  const float* v_scale;  // (n)
  size_t n, d;
  float* scores;  // (n) scratch; the attention weights on return
  float* out;     // (d)
};

inline void attention_q8(const Kernels& K, const AttentionQ8Args& a) {
  float sq;
  K.quantize_rows_q8(a.q, 1, a.d, a.q8, &sq);
  const float xs = sq * (1.0f / std::sqrt(static_cast<float>(a.d)));
  K.gemm_q8_tile(GemmQ8Args{a.q8, &xs, a.k, a.k_scale, nullptr, a.scores, 1, a.d, a.n}, 0, 1, 0, a.n);
  K.softmax_f32(a.scores, a.n);
  K.wsum_rows_q8(a.scores, a.v, a.v_scale, a.n, a.d, a.out);
}

}  // namespace ember
