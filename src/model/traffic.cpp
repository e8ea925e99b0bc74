// decode_traffic (include/ember/roofline.h): the bytes one decoded token reads, from the loaded model's
// own layout (what Session::Impl::forward touches for a batch of one).
#include "ember/roofline.h"
#include "format/q4.h"
#include "model/model_impl.h"

namespace ember {

namespace {

// A linear layer as the runtime reads it: int8 weights and one f32 scale per output row, int4 weights
// with their group scales (format/q4.h, rows padded to 16), or f32 weights (XNNPACK's packed copy holds
// the same values); the f32 bias when there is one.
uint64_t linear_bytes(const Linear& l) {
  const uint64_t in = l.in, out = l.out;
  const uint64_t w = l.w_q8   ? out * in + out * sizeof(float)
                     : l.w_q4 ? q4_bytes(out, in, l.group)
                              : out * in * sizeof(float);
  return w + (l.bias ? out * sizeof(float) : 0);
}

}  // namespace

Result<DecodeTraffic> decode_traffic(const Model& model, size_t n_past, KvType kv) {
  const ModelImpl& M = model_impl(model);
  const ModelConfig& c = M.config;
  if (kv != KvType::kF32 && kv != KvType::kInt8)
    return invalid_argument("decode traffic: unknown KV cache type " + std::to_string(static_cast<int>(kv)));
  if (n_past >= c.n_ctx)
    return invalid_argument("decode traffic: a token after " + std::to_string(n_past) + " cached tokens does not fit n_ctx " +
                            std::to_string(c.n_ctx) + " of " + model.path());
  const uint64_t C = c.n_embd, H = c.n_head, D = C / H, L = c.n_layer;
  DecodeTraffic t;
  for (const LayerWeights& w : M.layers) {
    for (const Linear& l : w.linear) t.linear += linear_bytes(l);
    for (int n = 0; n < 2; ++n) t.norms += (w.norm_g[n] ? C * sizeof(float) : 0) + (w.norm_b[n] ? C * sizeof(float) : 0);
  }
  if (M.ln_f_g) t.norms += C * sizeof(float);
  if (M.ln_f_b) t.norms += C * sizeof(float);
  t.lm_head = linear_bytes(M.lm_head);
  const uint64_t wte_row = M.wte_q8 ? C + sizeof(float) : M.wte_q4 ? C / 2 + 2 * (C / M.wte_group) : C * sizeof(float);
  t.embedding = wte_row + C * sizeof(float);  // wte row, wpe row
  // Attention at position n_past reads the rows of positions 0..n_past (its own included) of every layer
  // and head, keys and values.
  const uint64_t rows = 2 * L * H * (static_cast<uint64_t>(n_past) + 1);
  t.kv_cache = rows * (kv == KvType::kInt8 ? D + sizeof(float) : D * sizeof(float));
  return t;
}

}  // namespace ember
