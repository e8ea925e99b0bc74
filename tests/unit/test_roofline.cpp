// The roofline's two halves (include/ember/roofline.h): decode_traffic against sums over the model's own
// tensors (int8 and float, tied and untied heads, pre- and post-LN, with a classifier head that decode
// never reads), and measure_read_bandwidth's argument errors and what it reports. Nothing here is timed:
// the bandwidth's value is only checked to be a positive number.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "ember/convert.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/roofline.h"
#include "ember/session.h"
#include "model_specs.h"
#include "skip.h"
#include "test_paths.h"

using ember::KvType;

namespace {

std::shared_ptr<const ember::Model> load(const ember::ModelSpec& spec, const std::string& name) {
  auto m = ember::load_model_spec(spec, name);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  return *m;
}

std::shared_ptr<const ember::Model> golden(const std::string& name, bool int8_weights, bool int8_embeddings = true,
                                           ember::DType type = ember::DType::kI8) {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/" + name);
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  if (int8_weights) {
    ember::QuantizeOptions o;
    o.embeddings = int8_embeddings;
    o.type = o.embedding_type = type;
    o.group = 16;
    REQUIRE(ember::quantize_model(*spec, o).ok());
  }
  return load(*spec, name);
}

// A tensor as decode reads it: int8 as one byte per element plus an f32 scale per row, int4 as stored
// (nibbles and group scales), float (f32, or f16 / bf16 converted at load) as 4 bytes per element.
uint64_t runtime_bytes(const ember::TensorInfo& t) {
  uint64_t n = 1;
  for (uint64_t d : t.shape) n *= d;
  return t.dtype == ember::DType::kI8 ? n + 4 * t.shape[0] : t.dtype == ember::DType::kI4 ? t.bytes : 4 * n;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
bool contains(const std::string& s, const char* p) { return s.find(p) != std::string::npos; }

// The expectation, written from the tensor list alone.
ember::DecodeTraffic expected(const ember::Model& m, size_t n_past, KvType kv) {
  const ember::ModelConfig& c = m.config();
  ember::DecodeTraffic e;
  const std::string head = c.tied_lm_head ? "wte" : "lm_head.weight";
  for (const ember::TensorInfo& t : m.tensors()) {
    const uint64_t b = runtime_bytes(t);
    if (starts_with(t.name, "h.") && (contains(t.name, ".ln_1.") || contains(t.name, ".ln_2.")))
      e.norms += b;
    else if (starts_with(t.name, "h."))
      e.linear += b;  // attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj: weights (and scales) and biases
    else if (starts_with(t.name, "ln_f."))
      e.norms += b;
    if (t.name == head) e.lm_head = b;
    if (t.name == "wte")  // one row (and its scale; int4 rows are padded to blocks of 16)
      e.embedding += b / (t.dtype == ember::DType::kI4 ? (c.n_vocab + 15) / 16 * 16 : c.n_vocab);
    if (t.name == "wpe") e.embedding += b / c.n_ctx;
  }
  const uint64_t C = c.n_embd, H = c.n_head, D = C / H;
  const uint64_t rows = 2ull * c.n_layer * H * (n_past + 1);
  e.kv_cache = rows * (kv == KvType::kInt8 ? D + 4 : 4 * D);
  return e;
}

void check_traffic(const ember::Model& m, const std::string& what) {
  const size_t T = m.config().n_ctx;
  for (KvType kv : {KvType::kF32, KvType::kInt8})
    for (size_t n_past : {size_t{0}, size_t{1}, T / 2, T - 1}) {
      CAPTURE(what);
      CAPTURE(ember::kv_type_name(kv));
      CAPTURE(n_past);
      auto got = ember::decode_traffic(m, n_past, kv);
      REQUIRE_MESSAGE(got.ok(), got.status().message());
      const ember::DecodeTraffic want = expected(m, n_past, kv);
      CHECK(got->linear == want.linear);
      CHECK(got->lm_head == want.lm_head);
      CHECK(got->embedding == want.embedding);
      CHECK(got->norms == want.norms);
      CHECK(got->kv_cache == want.kv_cache);
      CHECK(got->weights() == want.linear + want.lm_head + want.embedding + want.norms);
      CHECK(got->total() == got->weights() + want.kv_cache);
    }
}

}  // namespace

TEST_CASE("decode_traffic: the golden models' tensors, float, int8 and int4") {
  for (const char* name : {"gpt2", "openai_gpt", "gpt1_relu", "nanogpt"}) {
    check_traffic(*golden(name, false), std::string(name) + " float");
    check_traffic(*golden(name, true), std::string(name) + " int8");
    check_traffic(*golden(name, true, false), std::string(name) + " int8, float embeddings");
    check_traffic(*golden(name, true, true, ember::DType::kI4), std::string(name) + " int4");
  }
}

TEST_CASE("decode_traffic: an untied head and a classifier head decode never reads") {
  ember::ModelConfig c;
  c.n_vocab = 50;
  c.n_ctx = 16;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_layer = 2;
  c.n_ff = 128;
  c.tied_lm_head = false;
  c.n_classes = 3;
  for (bool int8 : {false, true}) {
    ember::ModelSpec spec = ember_test::random_spec(c, 7, 0.02f);
    if (int8) REQUIRE(ember::quantize_model(spec, {}).ok());
    auto m = load(spec, "untied");
    check_traffic(*m, int8 ? "untied int8" : "untied float");
    // The head is lm_head.weight, not wte: for int8, V x C bytes plus V scales.
    auto t = ember::decode_traffic(*m, 0, KvType::kF32);
    REQUIRE(t.ok());
    CHECK(t->lm_head == (int8 ? 50u * 32u + 4u * 50u : 4u * 50u * 32u));
  }
}

TEST_CASE("decode_traffic: a layer of GPT-2 small in int8, worked by hand") {
  // GPT-2 small's layer (768 wide): 4 linear layers of 7,077,888 int8 weights in all, (2304 + 768 + 3072 +
  // 768) f32 scales and as many f32 biases; a tied head of 1000 x 768 bytes + 1000 scales (GPT-2's 50257
  // rows would only make the test slow).
  ember::ModelConfig c;
  c.n_vocab = 1000;
  c.n_ctx = 64;  // small: the spec's tensors are built in memory
  c.n_embd = 768;
  c.n_head = 12;
  c.n_layer = 1;
  c.n_ff = 3072;
  ember::ModelSpec spec = ember_test::random_spec(c, 1, 0.02f);
  REQUIRE(ember::quantize_model(spec, {}).ok());
  auto m = load(spec, "gpt2-small-layer");
  auto t = ember::decode_traffic(*m, 9, KvType::kF32);
  REQUIRE(t.ok());
  CHECK(t->linear == 7077888u + 2u * 4u * 6912u);
  CHECK(t->lm_head == 1000u * 768u + 4u * 1000u);
  CHECK(t->embedding == 768u + 4u + 4u * 768u);
  CHECK(t->norms == 4u * 4u * 768u + 2u * 4u * 768u);  // ln_1, ln_2 and ln_f
  CHECK(t->kv_cache == 2u * 10u * 4u * 768u);           // 10 positions of keys and values, f32
  auto q = ember::decode_traffic(*m, 9, KvType::kInt8);
  REQUIRE(q.ok());
  CHECK(q->kv_cache == 2u * 10u * (768u + 4u * 12u));  // int8 rows of 64 values + one scale per head
}

TEST_CASE("decode_traffic: argument errors name the problem") {
  auto m = golden("gpt2", true);
  const size_t T = m->config().n_ctx;
  auto full = ember::decode_traffic(*m, T, KvType::kF32);
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().code() == ember::StatusCode::kInvalidArgument);
  CHECK(contains(full.status().message(), "n_ctx"));
  CHECK(contains(full.status().message(), std::to_string(T).c_str()));
  auto bad = ember::decode_traffic(*m, 0, static_cast<KvType>(7));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == ember::StatusCode::kInvalidArgument);
  CHECK(contains(bad.status().message(), "KV cache type"));
}

TEST_CASE("measure_read_bandwidth: argument errors") {
  struct Bad {
    size_t threads, bytes;
    double seconds;
    const char* names;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Bad bad[] = {
      {0, 1 << 20, 0.01, "n_threads"},
      {1025, 1ull << 30, 0.01, "n_threads"},
      {1, 1000, 0.01, "64 KiB per thread"},
      {4, 4 * 65536 - 1, 0.01, "64 KiB per thread"},
      {1, std::numeric_limits<size_t>::max() / 2, 0.01, "physical memory"},
      {1, 1 << 20, 0, "min_seconds"},
      {1, 1 << 20, -1, "min_seconds"},
      {1, 1 << 20, nan, "min_seconds"},
      {1, 1 << 20, 61, "min_seconds"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.threads);
    CAPTURE(b.bytes);
    CAPTURE(b.seconds);
    auto r = ember::measure_read_bandwidth(b.threads, b.bytes, b.seconds);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ember::StatusCode::kInvalidArgument);
    CHECK_MESSAGE(contains(r.status().message(), b.names), r.status().message());
  }
}

TEST_CASE("measure_read_bandwidth: what it reports") {
  for (size_t threads : {size_t{1}, size_t{2}}) {
    CAPTURE(threads);
    // A buffer that is not a multiple of the threads' read steps: the slices cover a little less.
    const size_t asked = (1 << 20) + 1000;
    auto r = ember::measure_read_bandwidth(threads, asked, 0.01);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->n_threads == threads);
    CHECK(r->buffer_bytes <= asked);
    CHECK(r->buffer_bytes > asked - 256 * threads);
    CHECK(r->buffer_bytes % (256 * threads) == 0);
    CHECK(r->passes >= 3);
    CHECK(r->seconds > 0);
    CHECK(std::isfinite(r->bytes_per_second));
    CHECK(r->bytes_per_second > 0);
    CHECK(r->best_bytes_per_second >= r->bytes_per_second);
  }
}

TEST_CASE("last_level_cache_bytes: the largest cache sysfs lists (x86-64 Linux)") {
#if defined(__x86_64__)
  // cpuinfo reads CPUID on x86-64; the kernel's sysfs table comes from the same leaves.
  int best_level = 0;
  uint64_t best_bytes = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level(dir + "level"), size(dir + "size"), type(dir + "type");
    int l = 0;
    std::string s, ty;
    if (!(level >> l) || !(size >> s) || !(type >> ty)) continue;
    if (ty == "Instruction") continue;
    uint64_t v = std::stoull(s);
    if (s.back() == 'K') v <<= 10;
    if (s.back() == 'M') v <<= 20;
    if (l > best_level) best_level = l, best_bytes = v;
  }
  if (best_level == 0) {
    ember_test::skip("no /sys/devices/system/cpu/cpu0/cache here");
    return;
  }
  CHECK(ember::last_level_cache_bytes() == best_bytes);
#else
  const size_t llc = ember::last_level_cache_bytes();
  CHECK((llc == 0 || llc >= 4096));
#endif
}
