// The KV cache types (SessionOptions::kv_type): the int8 cache against the f32 cache on the golden models
// (float and int8 weights) and on the default model, with the bounds stated at each check; the int8 cache's
// own consistency (decode = prefill, any micro-batch, any thread count); sizes and bad options.
//
// Where the bounds come from: int8 KV quantizes every key, value and query row of head_dim values with its
// own scale (rounding error <= 1/254 of the row's largest value). The bounds are relative (to the logits'
// rms, or to the error of int8 weights on the same model), so they hold for regenerated fixtures, and are
// 2-3x the largest ratio measured on x86-64 when written (each test prints its numbers): loose enough for
// another ISA's ulps, tight enough that a wrong scale, row or position (errors of the order of the logits
// themselves) fails. Kernel-level bounds are in tests/kernels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ember/convert.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/session.h"
#include "skip.h"
#include "test_paths.h"

using ember::KvType;

namespace {

const char* kGolden[] = {"gpt2", "openai_gpt", "gpt1_relu", "nanogpt"};

std::shared_ptr<const ember::Model> golden_model(const std::string& name, bool int8_weights) {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/" + name);
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  if (int8_weights) REQUIRE(ember::quantize_model(*spec, {}).ok());
  const std::string p = ember_test::temp_dir() + "/ember_kv_" + name + (int8_weights ? ".int8" : "") + ".ember";
  REQUIRE(ember::write_model_file(*spec, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  std::remove(p.c_str());  // the mapping stays valid
  return *m;
}

std::vector<int32_t> golden_tokens(const std::string& name) {
  std::ifstream f(ember_test::data_dir() + "/golden/" + name + "/golden.json");
  REQUIRE(f.good());
  return nlohmann::json::parse(f)["tokens"].get<std::vector<int32_t>>();
}

std::unique_ptr<ember::Session> session(std::shared_ptr<const ember::Model> m, KvType kv, uint32_t threads = 1,
                                        uint32_t batch = 64) {
  ember::SessionOptions o;
  o.kv_type = kv;
  o.n_threads = threads;
  o.n_batch = batch;
  auto s = ember::Session::create(std::move(m), o);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

// Logits at every position of one prefill of `tokens` (at most n_ctx of them), flattened (n, n_vocab).
std::vector<float> all_logits(ember::Session& s, const std::vector<int32_t>& tokens) {
  std::vector<float> out;
  ember::Session::LogitsCallback cb = [&](size_t, const float* l) { out.insert(out.end(), l, l + s.n_vocab()); };
  s.reset();
  const size_t n = std::min(tokens.size(), s.n_ctx());
  ember::Status st = s.prefill(tokens.data(), n, &cb);
  REQUIRE_MESSAGE(st.ok(), st.message());
  return out;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s / a.size());
}

double rms(const std::vector<float>& a) {
  double s = 0;
  for (float v : a) s += static_cast<double>(v) * v;
  return std::sqrt(s / a.size());
}

}  // namespace

TEST_CASE("KV cache type names, sizes, and a bad type") {
  CHECK(std::string(ember::kv_type_name(KvType::kF32)) == "f32");
  CHECK(std::string(ember::kv_type_name(KvType::kInt8)) == "int8");
  CHECK(*ember::kv_type_from_name("int8") == KvType::kInt8);
  CHECK(*ember::kv_type_from_name("f32") == KvType::kF32);
  auto bad = ember::kv_type_from_name("q4");
  REQUIRE(!bad.ok());
  CHECK(bad.status().code() == ember::StatusCode::kInvalidArgument);
  CHECK(bad.status().message().find("q4") != std::string::npos);

  auto m = golden_model("gpt2", false);
  const ember::ModelConfig& c = m->config();
  const size_t rows = size_t{c.n_layer} * c.n_head * c.n_ctx, D = c.n_embd / c.n_head;
  auto f = session(m, KvType::kF32), q = session(m, KvType::kInt8);
  CHECK(f->kv_type() == KvType::kF32);
  CHECK(q->kv_type() == KvType::kInt8);
  // f32: K and V, 4 bytes a value. int8: 1 byte a value plus one f32 scale per row of D values.
  CHECK(f->kv_cache_bytes() == 2 * rows * D * 4);
  CHECK(q->kv_cache_bytes() == 2 * rows * (D + 4));
  CHECK(f->memory_bytes() - f->kv_cache_bytes() <= q->memory_bytes() - q->kv_cache_bytes());

  ember::SessionOptions o;
  o.kv_type = static_cast<KvType>(7);
  auto s = ember::Session::create(m, o);
  REQUIRE(!s.ok());
  CHECK(s.status().code() == ember::StatusCode::kInvalidArgument);
}

TEST_CASE("int8 KV: decoding token by token equals one prefill, at any micro-batch and thread count") {
  // The cache holds the same int8 rows whichever way they were appended, and each (query, head) runs the
  // same kernels, so with int8 weights (exact integer GEMMs for any batch) the logits are the same bits;
  // with f32 weights XNNPACK's batched GEMM may round differently: 1e-5, the f32 cache's bound (tests/golden).
  for (bool int8_weights : {false, true}) {
    for (const char* name : kGolden) {
      CAPTURE(name);
      CAPTURE(int8_weights);
      auto m = golden_model(name, int8_weights);
      const size_t V = m->config().n_vocab, T = m->config().n_ctx;
      std::vector<int32_t> tokens = golden_tokens(name);
      tokens.resize(T);
      auto full = all_logits(*session(m, KvType::kInt8, 1, 64), tokens);
      for (const auto& tb : {std::pair<uint32_t, uint32_t>{2, 64}, {1, 5}, {2, 7}}) {
        const uint32_t threads = tb.first, batch = tb.second;  // not a structured binding: CAPTURE's lambda (clang)
        CAPTURE(threads);
        CAPTURE(batch);
        auto other = all_logits(*session(m, KvType::kInt8, threads, batch), tokens);
        if (int8_weights) CHECK(other == full);
        else CHECK(max_abs_diff(other, full) < 1e-5);
      }
      auto s = session(m, KvType::kInt8, 2);
      std::vector<float> step;
      for (size_t t = 0; t < T; ++t) {
        REQUIRE(s->decode(tokens[t]).ok());
        step.insert(step.end(), s->logits(), s->logits() + V);
      }
      if (int8_weights) CHECK(step == full);
      else CHECK(max_abs_diff(step, full) < 1e-5);
      CHECK(s->decode(tokens[0]).code() == ember::StatusCode::kContextFull);
    }
  }
}

TEST_CASE("int8 vs f32 KV on the golden models: logit error bounds against int8 weights' own, perplexity within 1%") {
  // Teacher forcing over a full n_ctx window of the golden tokens; perplexity over all golden tokens in
  // windows of n_ctx (as tests/golden measures it). The reference is the float model with the f32 cache.
  // Float weights: the int8 cache moves the logits by less than half what int8 weights do (rms; measured
  // 0.13-0.27x) and by at most 10% of the logits' rms (measured <= 3.5%). Int8 weights: every linear
  // layer also quantizes its input per token, so the cache's rounding re-rounds those activations
  // downstream; against float, int8 weights + int8 cache have an rms error within 8% of int8 weights
  // alone and a max error up to 1.22x theirs (1.7x along tests/golden's greedy path); bounds 1.25x and
  // 2.5x. Perplexity: issue 3's 1% for int8, either way (measured <= 0.2%; <= 0.93% on the earlier
  // fixtures, whose random models had perplexities of 1600-7500 over 100-600 tokens).
  for (const char* name : kGolden) {
    CAPTURE(name);
    const std::vector<int32_t> tokens = golden_tokens(name);
    auto mf = golden_model(name, false), mq = golden_model(name, true);
    const auto ref = all_logits(*session(mf, KvType::kF32), tokens);
    const auto kv8 = all_logits(*session(mf, KvType::kInt8), tokens);
    const auto w8 = all_logits(*session(mq, KvType::kF32), tokens);
    const auto w8kv8 = all_logits(*session(mq, KvType::kInt8), tokens);
    const double kv_max = max_abs_diff(ref, kv8), kv_rms = rms_diff(ref, kv8), w_rms = rms_diff(ref, w8);
    const double w8_max = max_abs_diff(w8, w8kv8), w8_rms = rms_diff(w8, w8kv8);
    const double both_max = max_abs_diff(ref, w8kv8), both_rms = rms_diff(ref, w8kv8), w_max = max_abs_diff(ref, w8);
    MESSAGE(std::string(name) << ": logit rms " << rms(ref) << "; f32 weights: int8 KV moves logits by max " << kv_max << ", rms "
                              << kv_rms << " (int8 weights: rms " << w_rms << "); int8 weights: int8 KV moves them by max "
                              << w8_max << ", rms " << w8_rms << "; int8 weights + int8 KV vs float: max " << both_max << ", rms "
                              << both_rms << " (int8 weights alone: max " << w_max << ")");
    CHECK(kv_max > 0);  // the int8 path really ran
    CHECK(w8_max > 0);
    CHECK(kv_max < 0.1 * rms(ref));
    CHECK(kv_rms < 0.5 * w_rms);
    CHECK(both_rms < 1.25 * w_rms);
    CHECK(both_max < 2.5 * w_max);
    for (const auto& m : {mf, mq}) {
      auto sf = session(m, KvType::kF32), sq = session(m, KvType::kInt8);
      auto pf = ember::compute_perplexity(*sf, tokens, m->config().n_ctx);
      auto pq = ember::compute_perplexity(*sq, tokens, m->config().n_ctx);
      REQUIRE((pf.ok() && pq.ok()));
      const double ratio = pq->ppl / pf->ppl;
      MESSAGE(std::string(name) << std::string(m == mq ? " int8" : " f32") << " weights: ppl f32 KV " << pf->ppl << ", int8 KV " << pq->ppl
                                << " (x" << ratio << ")");
      CHECK(std::fabs(ratio - 1) < 0.01);  // issue 3's bound for int8, either way
    }
  }
}

TEST_CASE("int8 vs f32 KV on the default model: tiny shakespeare val text, logit bounds and perplexity within 0.2%") {
  // The shipped model has int8 weights. Measured with the step-2400 model: logit difference rms 1.0% and
  // max 7.6% of the logits' rms, perplexity -0.005% on this text (+0.007% on the whole val split, README).
  const std::string model_path = ember_test::env_or("EMBER_MODELS_DIR", "models") + "/shakespeare-char.ember";
  auto loaded = ember::Model::load(model_path);
  REQUIRE_MESSAGE(loaded.ok(), loaded.status().message());
  auto m = *loaded;
  const std::string text_path = ember_test::shared_data_dir() + "/text/tinyshakespeare.txt";
  std::string text;
  if (ember_test::need_file(text_path, "tiny shakespeare; the golden nanogpt text is used instead")) {
    // The first 8 windows of n_ctx characters of the val split (the last 10%, nanoGPT's split); the whole
    // split is measured with ember-perplexity in the README.
    std::ifstream f(text_path, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    text = all.substr(all.size() * 9 / 10, 8 * m->config().n_ctx);
  } else {
    std::ifstream f(ember_test::data_dir() + "/golden/nanogpt/text.txt", std::ios::binary);
    text.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  auto ids = m->tokenizer().encode(text);
  REQUIRE_MESSAGE(ids.ok(), ids.status().message());
  auto sf = session(m, KvType::kF32, 2), sq = session(m, KvType::kInt8, 2);
  // Logits along the first window, teacher-forced.
  const auto lf = all_logits(*sf, *ids), lq = all_logits(*sq, *ids);
  const double err = max_abs_diff(lf, lq), err_rms = rms_diff(lf, lq);
  auto pf = ember::compute_perplexity(*sf, *ids, m->config().n_ctx);
  auto pq = ember::compute_perplexity(*sq, *ids, m->config().n_ctx);
  REQUIRE((pf.ok() && pq.ok()));
  const double ratio = pq->ppl / pf->ppl;
  MESSAGE("default model (int8 weights), " << pf->n_tokens << " predicted chars: |logit f32 KV - int8 KV| max " << err << ", rms "
                                          << err_rms << " (logit rms " << rms(lf) << "), ppl f32 KV " << pf->ppl << ", int8 KV "
                                          << pq->ppl << " (x" << ratio << ")");
  CHECK(err > 0);
  CHECK(err < 0.3 * rms(lf));
  CHECK(err_rms < 0.05 * rms(lf));
  CHECK(std::fabs(ratio - 1) < 0.002);
}
