#include "ember/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "ember/sampler.h"
#include "format/q4.h"
#include "model/layer_tensors.h"
#include "model/model_impl.h"

namespace ember {

Result<std::vector<int32_t>> sample_tokens(std::shared_ptr<const Model> model, size_t n_tokens, size_t ctx,
                                           uint64_t seed, uint32_t threads) {
  SessionOptions so;
  so.n_threads = threads;
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, Session::create(model, so));
  SamplerParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 0;
  sp.top_p = 1.0f;
  sp.seed = seed;
  EMBER_ASSIGN_OR_RETURN(Sampler sampler, Sampler::create(sp, model->config().n_vocab));
  const int32_t eot = model->tokenizer().kind() != TokenizerKind::kNone && model->tokenizer().eot_id() >= 0
                          ? model->tokenizer().eot_id()
                          : 0;
  std::vector<int32_t> out;
  out.reserve(n_tokens);
  while (out.size() < n_tokens) {
    s->reset();
    int32_t t = eot;
    out.push_back(t);
    for (size_t i = 1; i < ctx && out.size() < n_tokens; ++i) {
      EMBER_RETURN_IF_ERROR(s->decode(t));
      t = sampler.sample(s->logits(), nullptr, 0);
      out.push_back(t);
    }
  }
  return out;
}

namespace {
const Linear* find_linear(const ModelImpl& M, const LinearTap& t) {
  if (t.layer >= M.layers.size()) return &M.lm_head;
  const LayerWeights& W = M.layers[t.layer];
  for (BlockLinear b : kBlockLinears)
    if (std::strcmp(t.name, block_linear_name(b)) == 0) return &W.lin(b);
  return nullptr;
}
}  // namespace

Result<QuantReport> measure_quantization(std::shared_ptr<const Model> fm, std::shared_ptr<const Model> qm,
                                         const std::vector<int32_t>& tokens, size_t ctx, uint32_t threads) {
  const ModelImpl& Q = model_impl(*qm);
  const Kernels& K = kernels();
  struct Acc {
    double err2 = 0, ref2 = 0;
    size_t order = 0;
  };
  std::map<std::string, Acc> acc;
  std::vector<int8_t> xq;
  std::vector<int32_t> xg;
  std::vector<float> xs, y;
  SessionOptions so;
  so.n_threads = threads;
  so.linear_tap = [&](const LinearTap& t) {
    const Linear* lin = find_linear(Q, t);
    if (!lin || !lin->is_quantized()) return;
    xq.resize(t.rows * t.in);
    xs.resize(t.rows);
    xg.resize(t.rows * t.in / kQ4GroupMultiple);
    y.resize(t.rows * t.out);
    Status st = lin->run(t.rows, t.x, y.data(), nullptr, K, QuantScratch{xq.data(), xs.data(), xg.data()});
    if (!st.ok()) return;
    const std::string name = t.layer >= Q.layers.size() ? "lm_head" : "h." + std::to_string(t.layer) + "." + t.name;
    Acc& a = acc[name];
    if (a.order == 0) a.order = acc.size();
    for (size_t i = 0; i < t.rows * t.out; ++i) {
      const double d = static_cast<double>(y[i]) - t.y[i];
      a.err2 += d * d;
      a.ref2 += static_cast<double>(t.y[i]) * t.y[i];
    }
  };
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Session> fs, Session::create(fm, so));
  QuantReport r;
  EMBER_ASSIGN_OR_RETURN(r.f32, compute_perplexity(*fs, tokens, ctx));
  SessionOptions qo;
  qo.n_threads = threads;
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<Session> qs, Session::create(qm, qo));
  EMBER_ASSIGN_OR_RETURN(r.quantized, compute_perplexity(*qs, tokens, ctx));
  std::vector<std::pair<size_t, LayerError>> ordered;
  for (const auto& kv : acc)
    ordered.push_back({kv.second.order, {kv.first, kv.second.ref2 > 0 ? std::sqrt(kv.second.err2 / kv.second.ref2) : 0.0}});
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& o : ordered) r.layers.push_back(o.second);
  return r;
}

}  // namespace ember
