// The per-token path allocates nothing: malloc / calloc / realloc / free are interposed (glibc's
// __libc_* do the work) and counted while a session decodes, for float and int8 models, f32 and int8 KV
// caches, 1 and 2 threads.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <utility>

#include "ember/convert.h"
#include "ember/generate.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "test_paths.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
}  // namespace

extern "C" {
void* malloc(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
}

namespace {

std::shared_ptr<const ember::Model> golden_model(const std::string& name, bool int8) {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/" + name);
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  if (int8) REQUIRE(ember::quantize_model(*spec, {}).ok());
  const std::string p = ember_test::temp_dir() + "/ember_alloc_" + name + (int8 ? ".int8" : "") + ".ember";
  REQUIRE(ember::write_model_file(*spec, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  std::remove(p.c_str());
  return *m;
}

}  // namespace

TEST_CASE("the counter sees allocations (so a zero below means something)") {
  g_allocs = 0;
  g_counting = true;
  void* p = std::malloc(100);
  std::vector<int>* v = new std::vector<int>(1000);
  g_counting = false;
  delete v;
  std::free(p);
  CHECK(g_allocs >= 3);
}

TEST_CASE("decode and sampling allocate nothing per token") {
  for (bool int8 : {false, true}) {
    for (const char* name : {"gpt2", "openai_gpt"}) {
      auto model = golden_model(name, int8);
      for (auto [threads, kv] : {std::pair<uint32_t, ember::KvType>{1u, ember::KvType::kF32}, {2u, ember::KvType::kF32},
                                 {1u, ember::KvType::kInt8}, {2u, ember::KvType::kInt8}}) {
        CAPTURE(int8);
        CAPTURE(name);
        CAPTURE(threads);
        CAPTURE(ember::kv_type_name(kv));
        ember::SessionOptions so;
        so.n_threads = threads;
        so.kv_type = kv;
        auto s = ember::Session::create(model, so);
        REQUIRE(s.ok());
        ember::SamplerParams sp;
        sp.seed = 3;
        sp.repeat_penalty = 1.1f;
        auto sampler = ember::Sampler::create(sp, model->config().n_vocab);
        REQUIRE(sampler.ok());
        std::vector<int32_t> hist = {1, 2, 3, 4};
        hist.reserve(64);
        std::vector<float> probs(model->config().n_vocab);
        bool drawn_from_probs = true;
        REQUIRE((*s)->prefill(hist.data(), hist.size()).ok());
        g_allocs = 0;
        g_counting = true;
        for (int i = 0; i < 20; ++i) {
          sampler->probabilities((*s)->logits(), hist.data(), hist.size(), probs.data());
          const int32_t next = sampler->sample((*s)->logits(), hist.data(), hist.size());
          drawn_from_probs = drawn_from_probs && probs[next] > 0.0f;
          hist.push_back(next);
          if (!(*s)->decode(next).ok()) break;
        }
        g_counting = false;
        CHECK((*s)->n_past() == 24);
        CHECK((*s)->kv_type() == kv);
        CHECK(g_allocs == 0);
        CHECK(drawn_from_probs);
      }
    }
  }
}

TEST_CASE("the generate helper allocates nothing per token (stop strings, context shifts, placeholders)") {
  auto m = ember::Model::load(ember_test::env_or("EMBER_MODELS_DIR", "models") + "/shakespeare-char.ember");
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  // The default model (characters) and a golden one without a tokenizer (every id a "<|token N|>").
  for (auto model : {*m, golden_model("gpt2", true)}) {
    for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
      CAPTURE(model->path());
      ember::SessionOptions so;
      so.kv_type = kv;
      so.abort = [] { return false; };
      auto s = ember::Session::create(model, so);
      REQUIRE(s.ok());
      ember::SamplerParams sp;
      sp.seed = 3;
      sp.repeat_penalty = 1.1f;
      auto sampler = ember::Sampler::create(sp, model->config().n_vocab);
      REQUIRE(sampler.ok());
      ember::GenerateOptions go;
      go.max_tokens = 300;  // past n_ctx (128, 64): shifts
      go.keep_going = true;
      go.echo_prompt = true;
      go.stop = {"\x01\x02", "zzzzz", "<|token 1000|>"};  // never complete, often begun
      auto gen = ember::Generator::create(**s, *sampler, go);
      REQUIRE(gen.ok());
      const int32_t prompt[] = {1, 2, 3};
      REQUIRE((*gen)->start(prompt, 3).ok());
      ember::GenerateStep step;
      size_t steps = 0;
      g_allocs = 0;
      g_counting = true;
      for (;;) {
        auto more = (*gen)->next(&step);
        if (!more.ok() || !*more) break;
        ++steps;
      }
      g_counting = false;
      CHECK((*gen)->n_generated() == 300);
      CHECK((*gen)->n_shifts() > 0);
      CHECK(steps >= 300);
      CHECK(g_allocs == 0);
    }
  }
}
