// ember's own kernels behind one dispatch table, filled once at start from cpuinfo.
// Every entry has a plain scalar reference (kernels/ref) that is the test oracle and the fallback;
// ISA versions (kernels/avx2, kernels/avx512, kernels/neon) are drop-ins tested against it.
//
//   const ember::Kernels& K = ember::kernels();   // "avx512"/"avxvnni"/"avx2" on x86-64, "neondot"/"neon" on AArch64, else "ref"
//   K.quantize_rows_q8(x, batch, in, xq, xs);             // x (batch, in) f32 -> xq int8, xs (batch)
//   ember::gemm_q8_parallel(pool, K, {xq, xs, w, ws, bias, y, batch, in, out});  // kernels/gemm_q8.h
//   ember::attention_q8(K, {q, qq, k, ks, v, vs, n, d, scores, out});           // kernels/attention.h
//
// Choice: kernels() returns the best table compiled into this build that the CPU runs, unless the
// environment variable EMBER_KERNELS names another: "ref" the reference, or a SIMD table this CPU runs
// ("avxvnni" or "avx2" on an AVX-512 CPU, to compare; read once, at the first call). A build
// configured with `-Dkernels=ref` (or for a CPU family without SIMD kernels yet) has only the reference.
// Thread safety: the tables are immutable; every kernel is reentrant and writes only its outputs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ember {

// One int8 linear layer with dynamically quantized activations:
//   y[t][o] = fma(xs[t] * ws[o], float(sum_i xq[t][i] * w[o][i]), bias ? bias[o] : 0)
// The sum is exact int32 arithmetic; the float epilogue is exactly the expression above (one product,
// one conversion, one fused multiply-add), so every implementation returns bit-identical y.
// Preconditions: every w and xq value in [-127, 127] (symmetric quantization: -128 is never produced by
// quantize_rows_q8 and must not appear in weights; the AVX2 sign trick and the NEON int16 pair sums rely on it);
// in <= 133144 so that |sum| <= 127 * 127 * in fits int32. No alignment is required (model weights
// are 64-byte aligned rows of the mmap; they are read in place, never repacked).
struct GemmQ8Args {
  const int8_t* xq;   // (batch, in) activations, row-major
  const float* xs;    // (batch) per-token activation scales
  const int8_t* w;    // (out, in) weights, row-major, exactly as stored in the model file
  const float* ws;    // (out) per-output-channel weight scales: w_real = ws[o] * w[o][i]
  const float* bias;  // (out) or nullptr
  float* y;           // (batch, out) row-major output
  size_t batch, in, out;
};

// One int4 linear layer (DType kI4, the layout of format/q4.h: 16-row blocks, nibbles u = q + 8, a half-float
// scale per row and group of `group` input channels) with the same per-token int8 activations:
//   s(t, o, g) = sum_{k in group g} (u[o][k] - 8) * xq[t][k]                 (exact int32)
//   acc = +0;  for g = 0, 1, ...: acc = fma(float(scale(o, g)), float(s(t, o, g)), acc)
//   y[t][o] = fma(xs[t], acc, bias ? bias[o] : 0)
// one fused multiply-add per group in group order, so every implementation, whatever its vector width
// (its lanes are output rows), returns bit-identical y. xg[t][g] = sum_{k in group g} xq[t][k], given by
// the caller (gemm_q4_parallel computes it): kernels that multiply the unsigned nibbles u by the signed
// activations subtract 8 * xg. Preconditions: xq in [-127, 127]; group a multiple of 16 dividing in.
// The weights are read in place (any alignment); rows out..padded (format/q4.h) are read, never written.
struct GemmQ4Args {
  const int8_t* xq;    // (batch, in)
  const float* xs;     // (batch)
  const int32_t* xg;   // (batch, in / group)
  const uint8_t* w;    // the tensor's bytes: nibbles, then the scales
  const uint16_t* ws;  // the scale region (w + q4_nibble_bytes(out, in)), half floats
  const float* bias;   // (out) or nullptr
  float* y;            // (batch, out)
  size_t batch, in, out, group;
};

struct Kernels {
  const char* name;  // "ref", "avx2", "avxvnni", "avx512", "neon", "neondot"
  // y = (x - mean) / sqrt(var + eps) * g + b over n elements (population variance).
  void (*layernorm_f32)(const float* x, const float* g, const float* b, float* y, size_t n, float eps);
  // In place, n elements.
  void (*gelu_tanh_f32)(float* x, size_t n);
  void (*gelu_erf_f32)(float* x, size_t n);
  void (*relu_f32)(float* x, size_t n);
  // In place softmax over n elements (max-subtracted).
  void (*softmax_f32)(float* x, size_t n);
  float (*dot_f32)(const float* a, const float* b, size_t n);
  // y += a * x
  void (*axpy_f32)(float a, const float* x, float* y, size_t n);
  // y += x
  void (*add_f32)(const float* x, float* y, size_t n);

  // Per-row symmetric int8 quantization of x (rows, n) into q (rows, n) and scale (rows):
  //   scale[r] = max_i |x[r][i]| / 127 (float division);   q = clamp(round(x / scale), -127, 127)
  // with round-half-to-even of the float quotient; an all-zero row gives scale 0 and q 0. Inputs must be
  // finite. Every implementation returns bit-identical q and scale.
  void (*quantize_rows_q8)(const float* x, size_t rows, size_t n, int8_t* q, float* scale);
  // The whole product of GemmQ8Args on the calling thread, positional form.
  void (*gemm_q8)(const int8_t* xq, const float* xs, size_t batch, const int8_t* w, const float* ws,
                  const float* bias, float* y, size_t in, size_t out);
  // The tile tokens [t0, t1) x output channels [o0, o1) of `a`. Disjoint tiles write disjoint parts of
  // a.y, so callers may run them concurrently (gemm_q8_parallel in kernels/gemm_q8.h does).
  void (*gemm_q8_tile)(const GemmQ8Args& a, size_t t0, size_t t1, size_t o0, size_t o1);

  // f32-q8-wsum: the weighted sum of n int8 rows of d values with one scale per row (the values of an
  // int8 KV cache, kernels/attention.h):
  //   out[i] = sum_{j = 0 .. n-1} (p[j] * scale[j]) * float(v[j][i])
  // evaluated for each i from +0 in the order j = 0, 1, ..., one product p[j] * scale[j] and one fused
  // multiply-add per term. Lanes are independent, so every implementation returns bit-identical out.
  // out (d floats) is overwritten and must not alias the inputs; n == 0 gives zeros. v is (n, d) row-major,
  // any int8 values; no alignment required.
  void (*wsum_rows_q8)(const float* p, const int8_t* v, const float* scale, size_t n, size_t d, float* out);

  // The f32 KV cache's two halves of attention (kernels/attention.h), a head's n cached rows per call
  // instead of one call per row:
  // scores: s[j] = dot_f32(q, k[j], d) * scale for j = 0 .. n-1, each dot exactly this table's dot_f32
  // (the same bits); k is (n, d) row-major.
  void (*scores_f32)(const float* q, const float* k, size_t n, size_t d, float scale, float* s);
  // f32-wsum, accumulating: out[i] += sum_{j = 0 .. n-1} p[j] * v[j][i], per column one fused multiply-add
  // per term onto out[i]'s value in the order j = 0, 1, ...: every implementation returns the same bits
  // (those of fma-accumulating row by row), so rows [0, a) then [a, n) in two calls give the bits of one
  // call. out (d floats) must not alias the inputs; n == 0 leaves it unchanged; no alignment required.
  void (*wsum_rows_f32)(const float* p, const float* v, size_t n, size_t d, float* out);

  // Activation backward (training), beside the forwards above: dinp[i] = f'(inp[i]) * dout[i] for
  // i < n, given the forward's input and its output out = f(inp), from which a SIMD version may recover
  // GELU's smooth factor instead of recomputing it. The reference evaluates the exact derivatives in
  // double; ReLU's derivative is 1 for inp > 0, else 0. dinp may alias dout.
  void (*gelu_tanh_backward_f32)(float* dinp, const float* dout, const float* inp, const float* out, size_t n);
  void (*gelu_erf_backward_f32)(float* dinp, const float* dout, const float* inp, const float* out, size_t n);
  void (*relu_backward_f32)(float* dinp, const float* dout, const float* inp, const float* out, size_t n);

  // Layer norm backward (training), one row of n: with xhat = (x - mean) * rstd and dn = dy * g,
  //   dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat))   (written, or added to dx when accumulate)
  //   dg[i] += dy[i] * xhat[i],  db[i] += dy[i]                (the caller's partial sums of the gradients)
  // given the forward's saved mean and rstd. The reference sums in float, in index order.
  void (*layernorm_backward_f32)(float* dx, bool accumulate, float* dg, float* db, const float* dy, const float* x,
                                 const float* g, float mean, float rstd, size_t n);
  // Softmax backward (training), in place over n: d[i] = scale * p[i] * (d[i] - sum_j p[j] d[j]), given
  // the probabilities p and the gradient d of the softmax's output (scale: attention's 1 / sqrt(d)).
  void (*softmax_backward_f32)(float* d, const float* p, size_t n, float scale);

  // f32 GEMM micro-kernel (training's gradient products; kernels/gemm_f32.h packs and drives it): a tile of
  // mr <= 6 rows and nr <= 16 columns of C over a depth block of kc, B packed as a 16-column panel
  // (b[p * 16 + j], columns nr..15 zero-padded), A strided (a[r * rs + p * cs]). Per element, exactly:
  //   t = +0;  for p = 0 .. kc-1: t = fma(a(r, p), b[p * 16 + j], t);  if (bias) t = t + bias[j];
  //   c[r * ldc + j] = acc ? c[r * ldc + j] + t : t
  // so every implementation returns the same bits. Writes only the mr x nr tile.
  void (*gemm_f32_tile)(size_t mr, size_t nr, size_t kc, const float* a, size_t rs, size_t cs, const float* b,
                        float* c, size_t ldc, bool acc, const float* bias);

  // The tile tokens [t0, t1) x output rows [o0, o1) of an int4 GemmQ4Args: o0 a multiple of 16, o1 a
  // multiple of 16 or a.out. Disjoint tiles write disjoint parts of a.y (gemm_q4_parallel, kernels/gemm_q4.h).
  void (*gemm_q4_tile)(const GemmQ4Args& a, size_t t0, size_t t1, size_t o0, size_t o1);
};

// log(sum_i exp(x[i])) over n >= 1 finite elements, max-subtracted, in double: the one log-sum-exp of the
// cross-entropy losses (training's LM and classifier losses, the runtime's perplexity). Scalar: it runs
// once per predicted row, beside a softmax or a GEMM that costs far more.
double log_sum_exp_f32(const float* x, size_t n);

const Kernels& reference_kernels();
// The best table for this CPU, chosen once (thread-safe static initialisation); honours EMBER_KERNELS.
const Kernels& kernels();
// What kernels() would choose for an EMBER_KERNELS value: "ref" gives the reference; the name of a table
// in simd_kernels() gives that table; nullptr, "", "auto" and any other value give the best table. For
// tests and tools.
const Kernels& choose_kernels(const char* request);
// Every SIMD table compiled into this build that this CPU runs, best first (the reference is not
// listed). Empty for `-Dkernels=ref` builds, CPU families without SIMD kernels, or CPUs lacking the ISA.
std::vector<const Kernels*> simd_kernels();

}  // namespace ember
