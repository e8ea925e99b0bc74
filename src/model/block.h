// One transformer block's forward, written once for the runtime session and the trainer:
//
//   pre-LN (GPT-2)                              post-LN (GPT-1)
//   ln1  = LN_1(x)                              qkv  = x Wqkv
//   qkv  = ln1 Wqkv                             atty = attention(qkv)
//   atty = attention(qkv)                       res1 = x + drop(atty Wo)
//   res1 = x + drop(atty Wo)                    ln1  = LN_1(res1)
//   ln2  = LN_2(res1)                           fch  = ln1 Wfc;  fcg = act(fch)
//   fch  = ln2 Wfc;  fcg = act(fch)             res2 = ln1 + drop(fcg Wp)
//   res2 = res1 + drop(fcg Wp)  -> output       ln2  = LN_2(res2)  -> output
//
// (biases omitted). The caller's `ops` object supplies each step on its own buffers and weights:
//
//   void   layernorm(BlockNorm which, const float* in, float* out);   // rows of the block
//   Status linear(BlockLinear which, const float* in, float* out);
//   Status attention(const float* qkv, float* out);                  // causal, over a cache or a sequence
//   void   activation(const float* in, float* out);                  // out may be in (in place)
//   void   dropout(BlockDropout site, float* x);                     // the runtime's does nothing
//   void   add(const float* x, float* y);                            // y += x over the block's rows
//
// The session (src/session/session.cpp) runs its layers through it with the runtime's kernels, int8 or
// float linear layers and a KV cache; the trainer (src/train/trainer.cpp) with the same float kernels,
// keeping every buffer for its backward. Buffers may alias where a caller needs no intermediate: the
// session's res1 is its scratch `tmp`, and res2 / ln2 overwrite the input x. Any order of evaluation
// differences between the two would show in the test that asserts their logits equal bit for bit.
#pragma once

#include "ember/status.h"

namespace ember {

enum class BlockLinear { kQkv, kAttnProj, kMlpFc, kMlpProj };
enum class BlockNorm { kLn1, kLn2 };
enum class BlockDropout { kAttnOut, kMlpOut };

struct BlockBuffers {
  const float* x;  // the block's input rows (N, C)
  float* ln1;      // (N, C)
  float* qkv;      // (N, 3C)
  float* atty;     // (N, C) attention output, before the projection
  float* res1;     // (N, C)
  float* ln2;      // (N, C)
  float* fch;      // (N, F) before the activation
  float* fcg;      // (N, F) after it (may equal fch)
  float* res2;     // (N, C)
  // The block's output rows: res2 (pre-LN) or ln2 (post-LN).
  const float* out(bool pre) const { return pre ? res2 : ln2; }
};

template <class Ops>
Status block_forward(Ops& ops, bool pre, const BlockBuffers& b) {
  // Attention sub-layer.
  const float* a_in = b.x;
  if (pre) {
    ops.layernorm(BlockNorm::kLn1, b.x, b.ln1);
    a_in = b.ln1;
  }
  EMBER_RETURN_IF_ERROR(ops.linear(BlockLinear::kQkv, a_in, b.qkv));
  EMBER_RETURN_IF_ERROR(ops.attention(b.qkv, b.atty));
  EMBER_RETURN_IF_ERROR(ops.linear(BlockLinear::kAttnProj, b.atty, b.res1));
  ops.dropout(BlockDropout::kAttnOut, b.res1);
  ops.add(b.x, b.res1);
  // Feed-forward sub-layer.
  const float* f_in;
  if (pre) {
    ops.layernorm(BlockNorm::kLn2, b.res1, b.ln2);
    f_in = b.ln2;
  } else {
    ops.layernorm(BlockNorm::kLn1, b.res1, b.ln1);
    f_in = b.ln1;
  }
  EMBER_RETURN_IF_ERROR(ops.linear(BlockLinear::kMlpFc, f_in, b.fch));
  ops.activation(b.fch, b.fcg);
  EMBER_RETURN_IF_ERROR(ops.linear(BlockLinear::kMlpProj, b.fcg, b.res2));
  ops.dropout(BlockDropout::kMlpOut, b.res2);
  ops.add(pre ? b.res1 : b.ln1, b.res2);
  if (!pre) ops.layernorm(BlockNorm::kLn2, b.res2, b.ln2);
  return Status::Ok();
}

}  // namespace ember
