// Training step phases on nanoGPT's CPU-benchmark shapes (4 layers, 4 heads, 128 wide, 64 tokens,
// batch 12, vocabulary 65, GELU, untied head, dropout 0): median milliseconds of forward, backward and the AdamW step
// over the iterations, and of the whole step. A benchmark (`meson test --benchmark`), never a pass/fail
// test. Usage: bench_train [--threads N] [--iters N] [--layers N --embd N --heads N --vocab N --ctx N --batch N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ember/train.h"

namespace {
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  unsigned threads = 2, iters = 60, layers = 4, embd = 128, heads = 4, vocab = 65, ctx = 64, batch = 12;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const unsigned v = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
    if (a == "--threads") threads = v;
    else if (a == "--iters") iters = v;
    else if (a == "--layers") layers = v;
    else if (a == "--embd") embd = v;
    else if (a == "--heads") heads = v;
    else if (a == "--vocab") vocab = v;
    else if (a == "--ctx") ctx = v;
    else if (a == "--batch") batch = v;
    else {
      std::fprintf(stderr, "bench_train: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (iters == 0 || threads == 0 || batch == 0) return 2;
  ember::ModelConfig c;
  c.n_vocab = vocab;
  c.n_ctx = ctx;
  c.n_embd = embd;
  c.n_head = heads;
  c.n_layer = layers;
  c.n_ff = 4 * embd;
  c.activation = ember::Activation::kGeluErf;  // nanoGPT's nn.GELU()
  c.tied_lm_head = false;                      // the benchmark command's --untied
  ember::TrainOptions o;
  o.batch = batch;
  o.n_threads = threads;
  auto tr = ember::Trainer::create(c, o);
  if (!tr.ok()) {
    std::fprintf(stderr, "bench_train: %s\n", tr.status().message().c_str());
    return 1;
  }
  ember::Trainer& t = **tr;
  std::mt19937 rng(1);
  std::vector<int32_t> tok(batch * ctx), tgt(batch * ctx);
  std::vector<double> f, b, s, all;
  for (unsigned it = 0; it < iters + 5; ++it) {
    for (auto& x : tok) x = static_cast<int32_t>(rng() % vocab);
    for (auto& x : tgt) x = static_cast<int32_t>(rng() % vocab);
    const double t0 = now_ms();
    if (!t.forward(tok.data(), tgt.data(), batch, ctx).ok()) return 1;
    const double t1 = now_ms();
    t.zero_grad();
    if (!t.backward().ok()) return 1;
    const double t2 = now_ms();
    t.step(1e-3f, ember::AdamWOptions{});
    const double t3 = now_ms();
    if (it < 5) continue;  // warm-up
    f.push_back(t1 - t0), b.push_back(t2 - t1), s.push_back(t3 - t2), all.push_back(t3 - t0);
  }
  std::printf("bench_train: %u layers, %u wide, %u heads, vocab %u, %u x %u tokens, %u threads, %u iterations\n", layers,
              embd, heads, vocab, batch, ctx, t.n_threads(), iters);
  std::printf("median ms: forward %.3f  backward %.3f  step %.3f  total %.3f\n", median(f), median(b), median(s),
              median(all));
  return 0;
}
