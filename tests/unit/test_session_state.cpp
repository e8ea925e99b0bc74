// Session state (the prompt cache), trim, abort and models used in place (issue 16). Every "equal" below
// is bit for bit: memcmp of logits.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/hash.h"
#include "ember/convert.h"
#include "ember/io.h"
#include "ember/model.h"
#include "ember/session.h"
#include "session/state.h"
#include "test_paths.h"

namespace {

using ModelPtr = std::shared_ptr<const ember::Model>;

std::string default_model_path() {
  return ember_test::env_or("EMBER_MODELS_DIR", "models") + "/shakespeare-char.ember";
}

ModelPtr load(const std::string& path) {
  auto m = ember::Model::load(path);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  return *m;
}

// The default model (int8 weights) and the golden GPT-2 as float weights (XNNPACK path).
ModelPtr default_model() {
  static ModelPtr m = load(default_model_path());
  return m;
}
ModelPtr float_model() {
  static ModelPtr m = [] {
    auto spec = ember::import_model(ember_test::data_dir() + "/golden/gpt2");
    REQUIRE_MESSAGE(spec.ok(), spec.status().message());
    auto r = ember::load_model_spec(*spec, "golden-gpt2-f32");
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    return *r;
  }();
  return m;
}

std::unique_ptr<ember::Session> session(ModelPtr m, ember::KvType kv, uint32_t n_batch = 64, uint32_t threads = 1) {
  ember::SessionOptions so;
  so.kv_type = kv;
  so.n_batch = n_batch;
  so.n_threads = threads;
  auto s = ember::Session::create(std::move(m), so);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

std::vector<int32_t> tokens(size_t n, size_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % n_vocab);
  return t;
}

bool same_logits(const ember::Session& a, const ember::Session& b) {
  REQUIRE(a.logits() != nullptr);
  REQUIRE(b.logits() != nullptr);
  return std::memcmp(a.logits(), b.logits(), a.n_vocab() * sizeof(float)) == 0;
}

std::vector<float> logits_of(const ember::Session& s) {
  REQUIRE(s.logits() != nullptr);
  return std::vector<float>(s.logits(), s.logits() + s.n_vocab());
}

// Rewrites the checksums of a state after a test changed its bytes (a forged state, not a corrupted one).
// `header`: the header's true size (the field itself may be what a test forged).
void reseal(std::vector<uint8_t>& st, size_t header) {
  const uint64_t payload = ember::xxh64(st.data() + header, st.size() - header);
  std::memcpy(st.data() + 80, &payload, 8);
  std::vector<uint8_t> h(st.begin(), st.begin() + header);
  std::memset(h.data() + 88, 0, 8);
  const uint64_t hh = ember::xxh64(h.data(), h.size());
  std::memcpy(st.data() + 88, &hh, 8);
}

}  // namespace

TEST_CASE("xxh64 matches the reference implementation's test vectors") {
  CHECK(ember::xxh64("", 0) == 0xEF46DB3751D8E999ull);
  CHECK(ember::xxh64("a", 1) == 0xD24EC4F1A98C6E5Bull);
  CHECK(ember::xxh64("abc", 3) == 0x44BC2CF5AD770999ull);
  const char* s = "Nobody inspects the spammish repetition";
  CHECK(ember::xxh64(s, std::strlen(s)) == 0xFBCEA83C8A378BF1ull);
  // Lengths 0..100 exercise every tail path; all distinct.
  std::vector<uint64_t> seen;
  std::string buf;
  for (int i = 0; i < 100; ++i, buf += static_cast<char>('a' + i % 26)) seen.push_back(ember::xxh64(buf.data(), buf.size()));
  std::sort(seen.begin(), seen.end());
  CHECK(std::unique(seen.begin(), seen.end()) == seen.end());
}

TEST_CASE("state: save after a prompt, restore into a fresh session: the next logits are bit-identical") {
  for (ModelPtr m : {default_model(), float_model()}) {
    for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
      CAPTURE(m->path());
      CAPTURE(ember::kv_type_name(kv));
      const size_t V = m->config().n_vocab, T = m->config().n_ctx;
      const std::vector<int32_t> prompt = tokens(std::min<size_t>(T / 2, 70), V, 1);
      const std::vector<int32_t> cont = tokens(5, V, 2);
      auto a = session(m, kv);
      REQUIRE(a->prefill(prompt.data(), prompt.size()).ok());
      auto st = a->save_state();
      REQUIRE_MESSAGE(st.ok(), st.status().message());
      CHECK(st->size() == a->state_size());

      // A fresh session (other thread count and micro-batch: they do not matter) restores it.
      auto b = session(m, kv, 7, 2);
      REQUIRE_MESSAGE(b->restore_state(st->data(), st->size()).ok(), b->restore_state(st->data(), st->size()).message());
      CHECK(b->n_past() == prompt.size());
      CHECK(std::memcmp(b->tokens(), prompt.data(), prompt.size() * sizeof(int32_t)) == 0);
      CHECK(same_logits(*a, *b));  // the saved logits, before anything runs
      for (int32_t t : cont) {
        REQUIRE(a->decode(t).ok());
        REQUIRE(b->decode(t).ok());
        CHECK(same_logits(*a, *b));
      }
      CHECK(a->n_past() == b->n_past());
    }
  }
}

TEST_CASE("state: a model loaded from its file, a copy in memory and in place share one fingerprint and its states") {
  ModelPtr file = default_model();
  auto bytes = ember::read_file(default_model_path());
  REQUIRE(bytes.ok());
  auto copy = ember::Model::load_from_buffer(bytes->data(), bytes->size(), "copy");
  REQUIRE(copy.ok());
  void* aligned = std::aligned_alloc(64, (bytes->size() + 63) / 64 * 64);
  std::memcpy(aligned, bytes->data(), bytes->size());
  {
    auto in_place = ember::Model::load_from_memory(aligned, bytes->size(), "flash");
    REQUIRE_MESSAGE(in_place.ok(), in_place.status().message());
    CHECK(file->fingerprint() == ember::xxh64(bytes->data(), bytes->size()));
    CHECK((*copy)->fingerprint() == file->fingerprint());
    CHECK((*in_place)->fingerprint() == file->fingerprint());
    CHECK((*in_place)->path() == "flash");

    const std::vector<int32_t> prompt = tokens(20, 65, 3);
    auto a = session(file, ember::KvType::kF32);
    REQUIRE(a->prefill(prompt.data(), prompt.size()).ok());
    auto st = a->save_state();
    REQUIRE(st.ok());
    auto b = session(*in_place, ember::KvType::kF32);
    REQUIRE(b->restore_state(st->data(), st->size()).ok());
    REQUIRE(a->decode(5).ok());
    REQUIRE(b->decode(5).ok());
    CHECK(same_logits(*a, *b));  // a model used in place computes what the file's model computes
  }
  // Misaligned or null buffers are refused, naming the problem; the copying loader takes any address.
  auto mis = ember::Model::load_from_memory(static_cast<char*>(aligned) + 8, bytes->size() - 8, "flash+8");
  CHECK(mis.status().code() == ember::StatusCode::kInvalidArgument);
  CHECK(mis.status().message().find("64-byte aligned") != std::string::npos);
  CHECK(mis.status().message().find("8 bytes past") != std::string::npos);
  CHECK(ember::Model::load_from_memory(nullptr, 100).status().code() == ember::StatusCode::kInvalidArgument);
  CHECK(ember::Model::load_from_memory(aligned, 10).status().code() == ember::StatusCode::kInvalidFile);
  std::free(aligned);
}

TEST_CASE("state: restoring into another model (same config, other weights) is an error naming both") {
  auto bytes = ember::read_file(default_model_path());
  REQUIRE(bytes.ok());
  // One int8 weight of the first layer changed: same config, same size, another model.
  ember::TensorInfo qkv{};
  for (const auto& t : default_model()->tensors())
    if (t.name == "h.0.attn.c_attn.weight") qkv = t;
  REQUIRE(qkv.dtype == ember::DType::kI8);
  std::string other = *bytes;
  other[qkv.offset + 10] = static_cast<char>(other[qkv.offset + 10] == 3 ? 4 : 3);
  auto m2 = ember::Model::load_from_buffer(other.data(), other.size(), "retrained.ember");
  REQUIRE(m2.ok());
  CHECK((*m2)->config().n_embd == default_model()->config().n_embd);
  CHECK((*m2)->fingerprint() != default_model()->fingerprint());

  auto a = session(default_model(), ember::KvType::kF32);
  const std::vector<int32_t> prompt = tokens(10, 65, 4);
  REQUIRE(a->prefill(prompt.data(), prompt.size()).ok());
  auto st = a->save_state();
  REQUIRE(st.ok());
  auto b = session(*m2, ember::KvType::kF32);
  const ember::Status r = b->restore_state(st->data(), st->size());
  CHECK(r.code() == ember::StatusCode::kInvalidArgument);
  CHECK(r.message().find(default_model_path()) != std::string::npos);
  CHECK(r.message().find("retrained.ember") != std::string::npos);
  CHECK(r.message().find("fingerprint") != std::string::npos);
  CHECK(b->n_past() == 0);

  // Another KV type of the same model: named too.
  auto c = session(default_model(), ember::KvType::kInt8);
  const ember::Status k = c->restore_state(st->data(), st->size());
  CHECK(k.code() == ember::StatusCode::kInvalidArgument);
  CHECK(k.message().find("f32 KV cache") != std::string::npos);
}

TEST_CASE("state: hostile bytes are refused before the session changes (sizes, version, checksums, values)") {
  for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
    CAPTURE(ember::kv_type_name(kv));
    auto a = session(default_model(), kv);
    const std::vector<int32_t> prompt = tokens(9, 65, 5);
    REQUIRE(a->prefill(prompt.data(), prompt.size()).ok());
    auto good = a->save_state();
    REQUIRE(good.ok());
    const std::vector<uint8_t>& st = *good;

    // The victim holds other tokens; every refused restore must leave them (and its logits) as they were.
    auto b = session(default_model(), kv);
    const std::vector<int32_t> mine = tokens(4, 65, 6);
    REQUIRE(b->prefill(mine.data(), mine.size()).ok());
    const std::vector<float> before = logits_of(*b);
    auto unchanged = [&] {
      REQUIRE(b->n_past() == 4);
      REQUIRE(b->logits() != nullptr);
      CHECK(std::memcmp(b->logits(), before.data(), before.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(b->tokens(), mine.data(), mine.size() * sizeof(int32_t)) == 0);
    };
    auto refused = [&](const std::vector<uint8_t>& bytes, ember::StatusCode code, const char* words) {
      const ember::Status s = b->restore_state(bytes.data(), bytes.size());
      CHECK_MESSAGE(s.code() == code, s.message());
      CHECK_MESSAGE(s.message().find(words) != std::string::npos, s.message());
      CHECK(s.message().rfind("session state: ", 0) == 0);
      unchanged();
    };

    // Every truncation of the header and a sample of the payload's; one byte too many.
    for (size_t n = 0; n < st.size(); n += (n < 300 ? 1 : 997)) {
      const ember::Status s = b->restore_state(st.data(), n);
      CHECK_MESSAGE(s.code() == ember::StatusCode::kInvalidFile, n);
    }
    unchanged();
    std::vector<uint8_t> longer = st;
    longer.push_back(0);
    refused(longer, ember::StatusCode::kInvalidFile, "trailing bytes");
    // Every byte of the header flipped, and bytes across the payload.
    for (size_t i = 0; i < st.size(); i += (i < 200 ? 1 : 331)) {
      std::vector<uint8_t> bad = st;
      bad[i] ^= 0x40;
      const ember::Status s = b->restore_state(bad.data(), bad.size());
      CHECK_MESSAGE(!s.ok(), i);
    }
    unchanged();
    {
      std::vector<uint8_t> bad = st;
      bad[st.size() - 1] ^= 1;
      refused(bad, ember::StatusCode::kInvalidFile, "payload checksum");
      bad = st;
      bad[20] ^= 1;  // the fingerprint, not resealed
      refused(bad, ember::StatusCode::kInvalidFile, "header checksum");
    }
    // Forged states (checksums recomputed): each field still checked.
    uint32_t header;
    std::memcpy(&header, st.data() + 12, 4);
    auto forged = [&](size_t off, uint64_t value, size_t width) {
      std::vector<uint8_t> bad = st;
      std::memcpy(bad.data() + off, &value, width);
      reseal(bad, header);
      return bad;
    };
    refused(forged(8, 2, 4), ember::StatusCode::kUnsupported, "version 2");
    refused(forged(0, 0x5858585858585858ull, 8), ember::StatusCode::kInvalidFile, "not an ember session state");
    refused(forged(12, 1u << 30, 4), ember::StatusCode::kInvalidFile, "inconsistent header");
    refused(forged(68, 5000, 4), ember::StatusCode::kInvalidFile, "inconsistent header");
    refused(forged(56, 129, 8), ember::StatusCode::kInvalidFile, "exceeds n_ctx");
    refused(forged(56, ~0ull, 8), ember::StatusCode::kInvalidFile, "exceeds n_ctx");
    refused(forged(56, 8, 8), ember::StatusCode::kInvalidFile, "payload of");
    refused(forged(72, ~0ull, 8), ember::StatusCode::kInvalidFile, "payload of");
    refused(forged(40, 256, 4), ember::StatusCode::kInvalidFile, "n_ctx 256 differs");
    refused(forged(52, 7, 4), ember::StatusCode::kInvalidFile, "n_layer 7 differs");
    refused(forged(32, 9, 4), ember::StatusCode::kInvalidFile, "unknown KV cache type");
    refused(forged(64, 4, 4), ember::StatusCode::kInvalidFile, "unknown flags");
    refused(forged(header + 4, 65, 4), ember::StatusCode::kInvalidFile, "outside the vocabulary");
    refused(forged(header, static_cast<uint64_t>(-1) & 0xffffffffu, 4), ember::StatusCode::kInvalidFile, "outside the vocabulary");
    if (kv == ember::KvType::kInt8) {
      // The first K row's first value of layer 0, head 0: after tokens, logits and hidden.
      const size_t at = header + 9 * 4 + 65 * 4 + 192 * 4;
      refused(forged(at, 0x80, 1), ember::StatusCode::kInvalidFile, "-128");
    }
    // Null buffers.
    CHECK(b->restore_state(nullptr, 100).code() == ember::StatusCode::kInvalidArgument);
    unchanged();
    // The good state still restores after all that.
    REQUIRE(b->restore_state(st.data(), st.size()).ok());
    CHECK(b->n_past() == 9);
  }
}

TEST_CASE("state: save into a caller's buffer (too small: the size needed), empty sessions, and through files") {
  auto a = session(default_model(), ember::KvType::kInt8);
  // An empty session saves and restores as empty (no logits).
  auto empty = a->save_state();
  REQUIRE(empty.ok());
  auto b = session(default_model(), ember::KvType::kInt8);
  const int32_t t = 3;
  REQUIRE(b->prefill(&t, 1).ok());
  REQUIRE(b->restore_state(empty->data(), empty->size()).ok());
  CHECK(b->n_past() == 0);
  CHECK(b->logits() == nullptr);

  const std::vector<int32_t> prompt = tokens(30, 65, 7);
  REQUIRE(a->prefill(prompt.data(), prompt.size()).ok());
  std::vector<uint8_t> buf(a->state_size());
  size_t written = 0;
  const ember::Status small = a->save_state(buf.data(), buf.size() - 1, &written);
  CHECK(small.code() == ember::StatusCode::kInvalidArgument);
  CHECK(written == buf.size());
  CHECK(a->save_state(nullptr, 0, &written).code() == ember::StatusCode::kInvalidArgument);
  REQUIRE(a->save_state(buf.data(), buf.size(), &written).ok());
  CHECK(written == buf.size());
  CHECK(buf == *a->save_state());

  const std::string path = ember_test::temp_dir() + "/ember_state_test_" + std::to_string(getpid()) + ".state";
  REQUIRE(a->save_state_file(path).ok());
  auto c = session(default_model(), ember::KvType::kInt8);
  REQUIRE(c->restore_state_file(path).ok());
  REQUIRE(a->decode(1).ok());
  REQUIRE(c->decode(1).ok());
  CHECK(same_logits(*a, *c));
  // Truncated on disk: the message names the file.
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(buf.data()), 50);
  }
  const ember::Status trunc = c->restore_state_file(path);
  CHECK(trunc.code() == ember::StatusCode::kInvalidFile);
  CHECK(trunc.message().find(path) != std::string::npos);
  std::remove(path.c_str());
  CHECK(c->restore_state_file(path).code() == ember::StatusCode::kNotFound);
  CHECK(c->restore_state_file(ember_test::temp_dir()).code() == ember::StatusCode::kInvalidArgument);  // a directory
  CHECK(a->save_state_file(ember_test::temp_dir() + "/no/such/dir/x.state").code() == ember::StatusCode::kIoError);
  CHECK(c->n_past() == 31);  // unchanged by the failures
}

TEST_CASE("trim: trim to N then decode equals a fresh prefill of the first N tokens plus that decode") {
  for (ModelPtr m : {default_model(), float_model()}) {
    for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
      CAPTURE(m->path());
      CAPTURE(ember::kv_type_name(kv));
      const size_t V = m->config().n_vocab, T = m->config().n_ctx;
      const std::vector<int32_t> all = tokens(std::min<size_t>(T, 100), V, 8);
      auto a = session(m, kv, 16);
      REQUIRE(a->prefill(all.data(), all.size() - 3).ok());
      for (size_t i = all.size() - 3; i < all.size(); ++i) REQUIRE(a->decode(all[i]).ok());
      for (size_t n : {all.size() - 1, size_t{37}, size_t{16}, size_t{1}, size_t{0}}) {
        CAPTURE(n);
        REQUIRE(a->trim(n).ok());
        CHECK(a->n_past() == n);
        CHECK(a->logits() == nullptr);
        const int32_t next = static_cast<int32_t>((n * 7 + 1) % V);
        REQUIRE(a->decode(next).ok());
        auto fresh = session(m, kv, 64);
        if (n) REQUIRE(fresh->prefill(all.data(), n).ok());
        REQUIRE(fresh->decode(next).ok());
        CHECK(same_logits(*a, *fresh));
        // Back to the full sequence for the next cut.
        REQUIRE(a->trim(n).ok());
        REQUIRE(a->prefill(all.data() + n, all.size() - n).ok());
      }
      CHECK(a->trim(a->n_past() + 1).code() == ember::StatusCode::kInvalidArgument);
      const std::vector<float> keep = logits_of(*a);
      REQUIRE(a->trim(a->n_past()).ok());  // no-op: logits stay
      CHECK(std::memcmp(a->logits(), keep.data(), keep.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("abort: a full-context prefill stops within one micro-batch, and the session stays usable") {
  for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
    CAPTURE(ember::kv_type_name(kv));
    ModelPtr m = default_model();
    const size_t T = m->config().n_ctx;  // 128
    const std::vector<int32_t> all = tokens(T, 65, 9);
    // The abort is requested from inside the third micro-batch (by the linear-layer tap): that micro-batch
    // completes, the fourth never starts.
    std::atomic<bool> stop{false};
    int asked = 0, linear_calls = 0;
    ember::SessionOptions so;
    so.kv_type = kv;
    so.n_batch = 16;
    const size_t linears_per_batch = 4 * m->config().n_layer;
    so.linear_tap = [&](const ember::LinearTap&) {
      if (++linear_calls == static_cast<int>(2 * linears_per_batch + 3)) stop = true;
    };
    so.abort = [&] {
      ++asked;
      return stop.load();
    };
    auto s = ember::Session::create(m, so);
    REQUIRE(s.ok());
    const ember::Status st = (*s)->prefill(all.data(), all.size());
    CHECK(st.code() == ember::StatusCode::kAborted);
    CHECK(st.message().find("48 of 128") != std::string::npos);
    CHECK(std::string(ember::status_code_name(st.code())) == "aborted");
    CHECK(asked == 4);                 // asked before micro-batches 1..4, the fourth refused
    CHECK((*s)->n_past() == 48);       // three micro-batches of 16 in the cache
    CHECK((*s)->logits() == nullptr);  // none computed (only the last micro-batch would)

    // Continue with the rest: the same bits as one uninterrupted prefill.
    stop = false;
    REQUIRE((*s)->prefill(all.data() + 48, T - 48).ok());
    auto ref = session(m, kv, 16);
    REQUIRE(ref->prefill(all.data(), all.size()).ok());
    CHECK(same_logits(**s, *ref));

    // An abort before the first micro-batch changes nothing; decode is asked too.
    REQUIRE((*s)->trim(100).ok());
    REQUIRE((*s)->decode(all[100]).ok());
    const std::vector<float> before = logits_of(**s);
    stop = true;
    CHECK((*s)->prefill(all.data() + 101, 20).code() == ember::StatusCode::kAborted);
    CHECK((*s)->decode(1).code() == ember::StatusCode::kAborted);
    CHECK((*s)->n_past() == 101);
    REQUIRE((*s)->logits() != nullptr);
    CHECK(std::memcmp((*s)->logits(), before.data(), before.size() * sizeof(float)) == 0);
    // Removing the callback: it runs again.
    (*s)->set_abort_callback(nullptr);
    CHECK(!(*s)->abort_callback());
    CHECK((*s)->decode(1).ok());
    CHECK((*s)->n_past() == 102);
  }
}

TEST_CASE("state: the committed fuzz seeds restore into sessions of the committed seed model") {
  // tests/fuzz/corpus/session_state holds states of tests/fuzz/corpus/model/int8_preln_chars.ember (both
  // written by tests/fuzz/make_seeds.cpp): if either changes alone, the fuzzer would only mutate refusals.
  const std::string corpus = ember_test::data_dir() + "/../fuzz/corpus";
  ModelPtr m = load(corpus + "/model/int8_preln_chars.ember");
  size_t restored = 0;
  for (const char* kv : {"f32", "int8"})
    for (const char* name : {"empty", "3", "full", "trimmed"}) {
      const std::string path = corpus + "/session_state/" + kv + "_" + name + ".state";
      CAPTURE(path);
      auto s = session(m, std::string(kv) == "int8" ? ember::KvType::kInt8 : ember::KvType::kF32, 4);
      const ember::Status st = s->restore_state_file(path);
      CHECK_MESSAGE(st.ok(), st.message());
      restored += st.ok();
    }
  CHECK(restored == 8);
}
