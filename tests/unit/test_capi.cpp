// The C API (include/ember.h): every call refuses NULLs and bad sizes with a message, states of another
// model are refused naming both, and each call computes what the C++ API computes (same logits, tokens,
// text). The examples (examples/c) are built and run against the installed library by
// tests/install/check.sh; the Python package's tests drive the same API through ctypes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ember.h"
#include "ember/classify.h"
#include "ember/convert.h"
#include "ember/generate.h"
#include "ember/io.h"
#include "ember/model.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "test_paths.h"

namespace {

std::string model_path() { return ember_test::env_or("EMBER_MODELS_DIR", "models") + "/shakespeare-char.ember"; }

// A model handle that frees itself.
struct Model {
  ember_model* m = nullptr;
  explicit Model(const std::string& path) { REQUIRE_MESSAGE(ember_model_load(path.c_str(), &m) == EMBER_OK, ember_last_error()); }
  Model(const Model&) = delete;
  ~Model() { ember_model_free(m); }
};
struct Session {
  ember_session* s = nullptr;
  explicit Session(const ember_model* m, ember_kv_type kv = EMBER_KV_F32) {
    ember_session_params p = ember_session_default_params();
    p.kv_type = kv;
    REQUIRE_MESSAGE(ember_session_create(m, &p, &s) == EMBER_OK, ember_last_error());
  }
  Session(const Session&) = delete;
  ~Session() { ember_session_free(s); }
};
struct Sampler {
  ember_sampler* s = nullptr;
  Sampler(uint64_t seed, size_t n_vocab) {
    ember_sampler_params p = ember_sampler_default_params();
    p.seed = seed;
    REQUIRE(ember_sampler_create(&p, n_vocab, &s) == EMBER_OK);
  }
  Sampler(const Sampler&) = delete;
  ~Sampler() { ember_sampler_free(s); }
};

bool error_mentions(const char* words) { return std::string(ember_last_error()).find(words) != std::string::npos; }

std::vector<int32_t> tokenize(const ember_model* m, const std::string& text) {
  size_t n = 0;
  REQUIRE(ember_tokenize(m, text.data(), text.size(), nullptr, 0, &n) == EMBER_OK);
  std::vector<int32_t> ids(n);
  REQUIRE(ember_tokenize(m, text.data(), text.size(), ids.data(), ids.size(), &n) == EMBER_OK);
  return ids;
}

int collect(int32_t token, const char* text, size_t len, void* user) {
  auto* out = static_cast<std::pair<std::string, std::vector<int32_t>>*>(user);
  CHECK(text[len] == '\0');
  out->first.append(text, len);
  if (token >= 0) out->second.push_back(token);
  return 0;
}

}  // namespace

TEST_CASE("capi: version, status names, and the thread's last error") {
  CHECK(std::string(ember_version()) == EMBER_VERSION_STRING);
  CHECK(std::string(ember_kernel_table()) == ember::kernel_table_name());
  CHECK(std::string(ember_status_name(EMBER_OK)) == "ok");
  CHECK(std::string(ember_status_name(EMBER_ABORTED)) == "aborted");
  CHECK(std::string(ember_status_name(static_cast<ember_status>(99))) == "unknown");
  CHECK(std::string(ember_stop_reason_name(EMBER_STOP_STOP_STRING)) == "stop string");
  CHECK(std::string(ember_stop_reason_name(static_cast<ember_stop_reason>(-3))) == "unknown");
  ember_model* m = reinterpret_cast<ember_model*>(1);
  CHECK(ember_model_load("/nonexistent/x.ember", &m) == EMBER_NOT_FOUND);
  CHECK(m == nullptr);
  CHECK(error_mentions("/nonexistent/x.ember"));
  Model ok(model_path());
  CHECK(std::string(ember_last_error()).empty());  // a success clears it
}

TEST_CASE("capi: NULLs, bad sizes and bad values are refused with a message naming the argument") {
  Model model(model_path());
  Session session(model.m);
  Sampler sampler(1, 65);
  size_t n = 7;
  const char* text = "x";
  int32_t id = 0;
  float probs[4];
  ember_model* mo = nullptr;
  ember_session* so = nullptr;
  ember_sampler* sa = nullptr;
  ember_generator* ge = nullptr;
  ember_model_config cfg;
  ember_step step;
  ember_generate_result res;
  const char* const* labels = nullptr;

  // Each call fails with a message naming what is wrong (ember_last_error is the last call's).
  auto message = [](ember_status st, const char* words) {
    CHECK(st != EMBER_OK);
    CHECK_MESSAGE(error_mentions(words), ember_last_error(), " lacks ", words);
  };
  message(ember_model_load(nullptr, &mo), "path is NULL");  // load path
  message(ember_model_load("x", nullptr), "out is NULL");  // load out
  message(ember_model_load_from_buffer(nullptr, 10, "b", &mo), "data is NULL");  // buffer data
  message(ember_model_load_from_memory(nullptr, 10, "b", &mo), "data is NULL");  // memory data
  message(ember_model_get_config(nullptr, &cfg), "model is NULL");  // config model
  message(ember_model_get_config(model.m, nullptr), "out is NULL");  // config out
  message(ember_model_labels(nullptr, &labels, &n), "model is NULL");  // labels model
  message(ember_tokenize(nullptr, "a", 1, &id, 1, &n), "model is NULL");  // tokenize model
  message(ember_tokenize(model.m, "a", 1, &id, 1, nullptr), "n_ids is NULL");  // tokenize n
  message(ember_tokenize(model.m, nullptr, 3, &id, 1, &n), "text is NULL");  // tokenize text
  message(ember_tokenize(model.m, "ab", 2, nullptr, 5, &n), "ids is NULL");  // tokenize ids
  message(ember_tokenize(model.m, "abc", 3, &id, 1, &n), "3 tokens, the buffer holds 1");  // tokenize capacity
  message(ember_detokenize(model.m, nullptr, 2, nullptr, 0, &n), "ids is NULL");  // detokenize ids
  message(ember_token_piece(model.m, 1, nullptr, 0, nullptr), "len is NULL");  // piece len
  message(ember_utf8_stream_create(nullptr), "out is NULL");  // stream out
  message(ember_utf8_stream_push(nullptr, "a", 1, &text, &n), "stream is NULL");  // stream push
  message(ember_session_create(nullptr, nullptr, &so), "model is NULL");  // session model
  message(ember_session_create(model.m, nullptr, nullptr), "out is NULL");  // session out
  message(ember_session_prefill(nullptr, &id, 1), "session is NULL");  // prefill session
  message(ember_session_prefill(session.s, nullptr, 1), "ids is NULL");  // prefill ids
  message(ember_session_prefill(session.s, &id, 0), "no tokens");  // prefill 0
  message(ember_session_decode(session.s, 65), "outside the vocabulary");  // decode range
  message(ember_session_decode(nullptr, 1), "session is NULL");  // decode session
  message(ember_session_reset(nullptr), "session is NULL");  // reset
  message(ember_session_trim(session.s, 5), "5 tokens asked to keep, the cache holds 0");  // trim
  message(ember_session_set_abort_callback(nullptr, nullptr, nullptr), "session is NULL");  // abort
  message(ember_session_state_size(session.s, nullptr), "size is NULL");  // state size
  message(ember_session_save_state(session.s, nullptr, 100, &n), "buf is NULL");  // save buf
  message(ember_session_save_state(session.s, probs, 4, &n), "buffer holds 4");  // save small
  message(ember_session_restore_state(session.s, nullptr, 100), "data is NULL");  // restore data
  message(ember_session_restore_state(session.s, probs, 3), "too short");  // restore short
  message(ember_session_save_state_file(session.s, nullptr), "path is NULL");  // save file
  message(ember_session_classify(session.s, probs, 4), "no classifier head");  // classify no head
  message(ember_classify(session.s, "ab", 2, probs, 4), "no classifier head");  // classify text
  message(ember_classify(session.s, "ab", 2, nullptr, 4), "probs is NULL");  // classify probs
  message(ember_sampler_create(nullptr, 65, nullptr), "out is NULL");  // sampler out
  message(ember_sampler_create(nullptr, 0, &sa), "n_vocab");  // sampler vocab
  message(ember_sampler_sample(sampler.s, nullptr, nullptr, 0, &id), "logits is NULL");  // sample logits
  message(ember_sampler_sample(sampler.s, probs, nullptr, 0, nullptr), "token is NULL");  // sample token
  message(ember_generate(nullptr, sampler.s, "a", nullptr, nullptr, nullptr, &res), "session is NULL");  // generate session
  message(ember_generate(session.s, nullptr, "a", nullptr, nullptr, nullptr, &res), "sampler is NULL");  // generate sampler
  message(ember_generate_ids(session.s, sampler.s, nullptr, 3, nullptr, nullptr, nullptr, &res), "prompt is NULL");  // generate ids
  message(ember_generate(session.s, sampler.s, "", nullptr, nullptr, nullptr, &res), "no prompt");  // generate nothing
  message(ember_generator_create(session.s, sampler.s, nullptr, nullptr), "out is NULL");  // generator out
  message(ember_generator_next(nullptr, &step), "generator is NULL");  // generator next
  message(ember_generator_next(nullptr, nullptr), "step is NULL");  // generator step
  message(ember_generator_start(nullptr, "a"), "generator is NULL");  // generator start
  message(ember_generator_result(nullptr, &res), "generator is NULL");  // generator result
  CHECK(mo == nullptr);
  CHECK(so == nullptr);
  CHECK(sa == nullptr);
  CHECK(ge == nullptr);
  message(ember_tokenize(model.m, "abc", 3, &id, 1, &n), "3 tokens, the buffer holds 1");
  CHECK(n == 3);  // the number needed
  message(ember_session_save_state(session.s, probs, 4, &n), "buffer holds 4");
  CHECK(n > 4);  // the bytes needed
  ember_generate_params gp = ember_generate_default_params();
  gp.n_stop = 2;
  message(ember_generate(session.s, sampler.s, "a", &gp, nullptr, nullptr, &res), "params->stop is NULL");
  const char* empty_stop[] = {"ok", ""};
  gp.stop = empty_stop;
  message(ember_generate(session.s, sampler.s, "a", &gp, nullptr, nullptr, &res), "stop string 1 is empty");
  gp = ember_generate_default_params();
  gp.max_tokens = -1;
  message(ember_generator_create(session.s, sampler.s, &gp, &ge), "max_tokens");
  CHECK(ge == nullptr);
  ember_session_params sp = ember_session_default_params();
  sp.kv_type = static_cast<ember_kv_type>(7);
  message(ember_session_create(model.m, &sp, &so), "unknown kv_type 7");
  sp = ember_session_default_params();
  sp.n_threads = 0;
  message(ember_session_create(model.m, &sp, &so), "n_threads");
  CHECK(so == nullptr);
  message(ember_tokenize(model.m, "\xff", 1, &id, 1, &n), "UTF-8");
  message(ember_tokenize(model.m, "{", 1, &id, 1, &n), "{");  // not among the 65 characters

  // Getters and frees of NULL.
  CHECK(ember_model_name(nullptr) == nullptr);
  CHECK(ember_model_metadata(nullptr, "x") == nullptr);
  CHECK(ember_model_metadata(model.m, nullptr) == nullptr);
  CHECK(ember_model_metadata(model.m, "no such key") == nullptr);
  CHECK(ember_model_fingerprint(nullptr) == 0);
  CHECK(ember_token_is_special(nullptr, 1) == 0);
  CHECK(ember_session_logits(nullptr) == nullptr);
  CHECK(ember_session_tokens(nullptr) == nullptr);
  CHECK(ember_session_n_past(nullptr) == 0);
  CHECK(ember_session_n_ctx(nullptr) == 0);
  CHECK(ember_session_n_vocab(nullptr) == 0);
  CHECK(ember_session_n_threads(nullptr) == 0);
  ember_model_free(nullptr);
  ember_session_free(nullptr);
  ember_sampler_free(nullptr);
  ember_generator_free(nullptr);
  ember_utf8_stream_free(nullptr);
}

TEST_CASE("capi: models from a path, a copy and in place; config, metadata, tokenizer") {
  Model model(model_path());
  auto cpp = ember::Model::load(model_path());
  REQUIRE(cpp.ok());
  ember_model_config c;
  REQUIRE(ember_model_get_config(model.m, &c) == EMBER_OK);
  CHECK(c.n_vocab == 65);
  CHECK(c.n_ctx == 128);
  CHECK(c.n_embd == 192);
  CHECK(c.n_layer == 6);
  CHECK(c.n_classes == 0);
  CHECK(c.tokenizer == EMBER_TOKENIZER_CHARS);
  CHECK(c.n_tokens == 65);
  CHECK(c.eot_id == -1);
  CHECK(std::string(ember_model_name(model.m)) == model_path());
  CHECK(std::string(ember_model_metadata(model.m, "source")) == "ember-default");
  CHECK(ember_model_fingerprint(model.m) == (*cpp)->fingerprint());

  auto bytes = ember::read_file(model_path());
  REQUIRE(bytes.ok());
  ember_model* copy = nullptr;
  REQUIRE(ember_model_load_from_buffer(bytes->data(), bytes->size(), "copy", &copy) == EMBER_OK);
  CHECK(std::string(ember_model_name(copy)) == "copy");
  CHECK(ember_model_fingerprint(copy) == ember_model_fingerprint(model.m));
  ember_model_free(copy);
  ember_model* bad = nullptr;
  CHECK(ember_model_load_from_buffer(bytes->data(), 100, "cut", &bad) == EMBER_INVALID_FILE);
  CHECK(error_mentions("cut"));
  CHECK(bad == nullptr);
  CHECK(ember_model_load_from_buffer(bytes->data(), 0, nullptr, &bad) == EMBER_INVALID_FILE);
  CHECK(error_mentions("<memory>"));
  void* aligned = std::aligned_alloc(64, (bytes->size() + 127) / 64 * 64);
  std::memcpy(aligned, bytes->data(), bytes->size());
  ember_model* in_place = nullptr;
  CHECK(ember_model_load_from_memory(aligned, bytes->size(), "flash", &in_place) == EMBER_OK);
  ember_model_free(in_place);
  std::memmove(static_cast<char*>(aligned) + 16, aligned, bytes->size());
  CHECK(ember_model_load_from_memory(static_cast<char*>(aligned) + 16, bytes->size(), "flash", &in_place) ==
        EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions("64-byte aligned"));
  std::free(aligned);

  // Tokenizer: as the C++ one; detokenize joins valid UTF-8 with placeholders.
  const std::vector<int32_t> ids = tokenize(model.m, "ROMEO: Hi!");
  CHECK(ids == (*cpp)->tokenizer().encode("ROMEO: Hi!").value());
  size_t len = 0;
  REQUIRE(ember_detokenize(model.m, ids.data(), ids.size(), nullptr, 0, &len) == EMBER_OK);
  CHECK(len == 10);
  std::vector<char> buf(len);
  CHECK(ember_detokenize(model.m, ids.data(), ids.size(), buf.data(), buf.size(), &len) == EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions("a NUL"));
  buf.resize(len + 1);
  REQUIRE(ember_detokenize(model.m, ids.data(), ids.size(), buf.data(), buf.size(), &len) == EMBER_OK);
  CHECK(std::string(buf.data()) == "ROMEO: Hi!");
  const int32_t odd[] = {20, 70, -2};
  REQUIRE(ember_detokenize(model.m, odd, 3, nullptr, 0, &len) == EMBER_OK);
  buf.resize(len + 1);
  REQUIRE(ember_detokenize(model.m, odd, 3, buf.data(), buf.size(), &len) == EMBER_OK);
  CHECK(std::string(buf.data()) == "H<|token 70|><|token -2|>");
  CHECK(ember_token_is_special(model.m, 70) == 1);
  CHECK(ember_token_is_special(model.m, 20) == 0);
  char piece[32];
  REQUIRE(ember_token_piece(model.m, 20, piece, sizeof piece, &len) == EMBER_OK);
  CHECK(std::string(piece, len) == "H");
  REQUIRE(ember_token_piece(model.m, 99, piece, sizeof piece, &len) == EMBER_OK);
  CHECK(std::string(piece) == "<|token 99|>");
  CHECK(ember_token_piece(model.m, 99, piece, 5, &len) == EMBER_INVALID_ARGUMENT);

  // A UTF-8 stream never splits a character: "é" (C3 A9) and "€" (E2 82 AC) pushed a byte at a time.
  ember_utf8_stream* us = nullptr;
  REQUIRE(ember_utf8_stream_create(&us) == EMBER_OK);
  const char* t = nullptr;
  std::string joined;
  for (char b : std::string("a\xc3\xa9\xe2\x82\xac\xe2\x82")) {
    REQUIRE(ember_utf8_stream_push(us, &b, 1, &t, &len) == EMBER_OK);
    CHECK(ember::is_valid_utf8(std::string_view(t, len)));
    joined.append(t, len);
  }
  CHECK(joined == "a\xc3\xa9\xe2\x82\xac");
  REQUIRE(ember_utf8_stream_flush(us, &t, &len) == EMBER_OK);
  CHECK(std::string(t, len) == "\xef\xbf\xbd");  // the cut-off character
  ember_utf8_stream_free(us);
}

TEST_CASE("capi: sessions compute what the C++ sessions compute; trim, reset, abort; state save/restore") {
  Model model(model_path());
  auto cpp = ember::Model::load(model_path());
  REQUIRE(cpp.ok());
  for (ember_kv_type kv : {EMBER_KV_F32, EMBER_KV_INT8}) {
    CAPTURE(kv);
    Session s(model.m, kv);
    ember::SessionOptions so;
    so.kv_type = kv == EMBER_KV_INT8 ? ember::KvType::kInt8 : ember::KvType::kF32;
    auto ref = ember::Session::create(*cpp, so);
    REQUIRE(ref.ok());
    const std::vector<int32_t> prompt = tokenize(model.m, "ROMEO: what light");
    CHECK(ember_session_logits(s.s) == nullptr);
    REQUIRE(ember_session_prefill(s.s, prompt.data(), prompt.size()) == EMBER_OK);
    REQUIRE((*ref)->prefill(prompt.data(), prompt.size()).ok());
    CHECK(std::memcmp(ember_session_logits(s.s), (*ref)->logits(), 65 * sizeof(float)) == 0);
    CHECK(ember_session_n_past(s.s) == prompt.size());
    CHECK(ember_session_n_ctx(s.s) == 128);
    CHECK(ember_session_n_vocab(s.s) == 65);
    CHECK(ember_session_n_threads(s.s) == 1);
    CHECK(std::memcmp(ember_session_tokens(s.s), prompt.data(), prompt.size() * 4) == 0);

    // State: save, restore into a fresh session, same next logits.
    size_t size = 0, written = 0;
    REQUIRE(ember_session_state_size(s.s, &size) == EMBER_OK);
    std::vector<uint8_t> state(size);
    REQUIRE(ember_session_save_state(s.s, state.data(), state.size(), &written) == EMBER_OK);
    CHECK(written == size);
    Session fresh(model.m, kv);
    REQUIRE(ember_session_restore_state(fresh.s, state.data(), state.size()) == EMBER_OK);
    REQUIRE(ember_session_decode(s.s, 7) == EMBER_OK);
    REQUIRE(ember_session_decode(fresh.s, 7) == EMBER_OK);
    CHECK(std::memcmp(ember_session_logits(s.s), ember_session_logits(fresh.s), 65 * sizeof(float)) == 0);
    // Bad sizes and corrupted bytes: refused, the session unchanged.
    CHECK(ember_session_restore_state(fresh.s, state.data(), state.size() - 1) == EMBER_INVALID_FILE);
    CHECK(error_mentions("truncated"));
    state[state.size() / 2] ^= 1;
    CHECK(ember_session_restore_state(fresh.s, state.data(), state.size()) == EMBER_INVALID_FILE);
    CHECK(error_mentions("checksum"));
    CHECK(ember_session_n_past(fresh.s) == prompt.size() + 1);
    // Through a file.
    const std::string path = ember_test::temp_dir() + "/ember_capi_" + std::to_string(getpid()) + ".state";
    REQUIRE(ember_session_save_state_file(s.s, path.c_str()) == EMBER_OK);
    Session from_file(model.m, kv);
    REQUIRE(ember_session_restore_state_file(from_file.s, path.c_str()) == EMBER_OK);
    CHECK(ember_session_n_past(from_file.s) == prompt.size() + 1);
    std::remove(path.c_str());
    CHECK(ember_session_restore_state_file(from_file.s, path.c_str()) == EMBER_NOT_FOUND);
    CHECK(error_mentions(path.c_str()));

    // Trim, then decode: as a fresh prefill of the kept tokens.
    REQUIRE(ember_session_trim(s.s, 5) == EMBER_OK);
    CHECK(ember_session_logits(s.s) == nullptr);
    REQUIRE(ember_session_decode(s.s, 9) == EMBER_OK);
    (*ref)->reset();
    REQUIRE((*ref)->prefill(prompt.data(), 5).ok());
    REQUIRE((*ref)->decode(9).ok());
    CHECK(std::memcmp(ember_session_logits(s.s), (*ref)->logits(), 65 * sizeof(float)) == 0);
    REQUIRE(ember_session_reset(s.s) == EMBER_OK);
    CHECK(ember_session_n_past(s.s) == 0);

    // Abort: the callback sees its user data; EMBER_ABORTED, then usable again without it.
    int calls = 0;
    auto abort_after_one = [](void* user) -> int { return ++*static_cast<int*>(user) > 1; };
    REQUIRE(ember_session_set_abort_callback(s.s, abort_after_one, &calls) == EMBER_OK);
    std::vector<int32_t> full(128, 3);
    CHECK(ember_session_prefill(s.s, full.data(), full.size()) == EMBER_ABORTED);
    CHECK(error_mentions("aborted"));
    CHECK(calls == 2);
    CHECK(ember_session_n_past(s.s) == 64);  // one micro-batch of the default 64
    REQUIRE(ember_session_set_abort_callback(s.s, nullptr, nullptr) == EMBER_OK);
    REQUIRE(ember_session_prefill(s.s, full.data() + 64, 64) == EMBER_OK);
    CHECK(ember_session_decode(s.s, 1) == EMBER_CONTEXT_FULL);
  }
}

TEST_CASE("capi: a state from another model is refused, naming both models") {
  auto bytes = ember::read_file(model_path());
  REQUIRE(bytes.ok());
  std::string other = *bytes;
  // The same config; one weight of the LM head changed.
  auto cpp = ember::Model::load(model_path());
  REQUIRE(cpp.ok());
  for (const auto& t : (*cpp)->tensors())
    if (t.name == "lm_head.weight") other[t.offset] = static_cast<char>(other[t.offset] == 1 ? 2 : 1);
  Model a(model_path());
  ember_model* b = nullptr;
  REQUIRE(ember_model_load_from_buffer(other.data(), other.size(), "other-weights", &b) == EMBER_OK);
  Session sa(a.m);
  Session sb(b);
  const int32_t ids[] = {1, 2, 3};
  REQUIRE(ember_session_prefill(sa.s, ids, 3) == EMBER_OK);
  size_t size = 0, written = 0;
  REQUIRE(ember_session_state_size(sa.s, &size) == EMBER_OK);
  std::vector<uint8_t> st(size);
  REQUIRE(ember_session_save_state(sa.s, st.data(), st.size(), &written) == EMBER_OK);
  CHECK(ember_session_restore_state(sb.s, st.data(), st.size()) == EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions(model_path().c_str()));
  CHECK(error_mentions("other-weights"));
  CHECK(error_mentions("fingerprint"));
  CHECK(ember_session_n_past(sb.s) == 0);
  // Another KV type of the same model.
  Session si(a.m, EMBER_KV_INT8);
  CHECK(ember_session_restore_state(si.s, st.data(), st.size()) == EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions("f32 KV cache"));
  ember_model_free(b);
}

TEST_CASE("capi: sampler and generate equal the C++ API; stop strings, abort, callback stop, the step API") {
  Model model(model_path());
  auto cpp = ember::Model::load(model_path());
  REQUIRE(cpp.ok());
  // C++ reference: 100 seeded tokens after "ROMEO:", the prompt echoed.
  ember::SamplerParams sp;
  sp.seed = 1;
  auto cs = ember::Sampler::create(sp, 65);
  auto csession = ember::Session::create(*cpp, {});
  ember::GenerateOptions go;
  go.max_tokens = 100;
  go.echo_prompt = true;
  std::string want;
  auto r = ember::generate(**csession, *cs, "ROMEO:", go, [&](int32_t, std::string_view t) {
    want += t;
    return true;
  });
  REQUIRE(r.ok());
  REQUIRE(want.size() > 100);

  {
    Session s(model.m);
    Sampler sampler(1, 65);
    ember_generate_params gp = ember_generate_default_params();
    gp.max_tokens = 100;
    gp.echo_prompt = 1;
    std::pair<std::string, std::vector<int32_t>> got;
    ember_generate_result res;
    REQUIRE(ember_generate(s.s, sampler.s, "ROMEO:", &gp, collect, &got, &res) == EMBER_OK);
    CHECK(got.first == want);
    CHECK(res.stop_reason == EMBER_STOP_MAX_TOKENS);
    CHECK(res.n_prompt == 6);
    CHECK(res.n_generated == 100);
    CHECK(got.second.size() == 100);
  }
  {
    // The step API, the prompt as ids: the same text.
    Session s(model.m);
    Sampler sampler(1, 65);
    ember_generate_params gp = ember_generate_default_params();
    gp.max_tokens = 100;
    gp.echo_prompt = 1;
    ember_generator* g = nullptr;
    REQUIRE(ember_generator_create(s.s, sampler.s, &gp, &g) == EMBER_OK);
    const std::vector<int32_t> prompt = tokenize(model.m, "ROMEO:");
    CHECK(ember_generator_next(g, nullptr) == EMBER_INVALID_ARGUMENT);
    ember_step step;
    CHECK(ember_generator_next(g, &step) == EMBER_INVALID_ARGUMENT);  // not started
    CHECK(error_mentions("start()"));
    REQUIRE(ember_generator_start_ids(g, prompt.data(), prompt.size()) == EMBER_OK);
    std::string got;
    size_t steps = 0;
    for (;;) {
      REQUIRE(ember_generator_next(g, &step) == EMBER_OK);
      if (step.done) break;
      CHECK(step.text[step.len] == '\0');
      got.append(step.text, step.len);
      ++steps;
    }
    CHECK(got == want);
    CHECK(steps == 101);  // the echo, then 100 tokens
    REQUIRE(ember_generator_next(g, &step) == EMBER_OK);
    CHECK(step.done);
    ember_generate_result res;
    REQUIRE(ember_generator_result(g, &res) == EMBER_OK);
    CHECK(res.stop_reason == EMBER_STOP_MAX_TOKENS);
    CHECK(res.n_generated == 100);
    ember_generator_free(g);
  }
  {
    // Stop strings: the text ends before the first one; a callback's nonzero stops; so does an abort.
    const std::string stop = want.substr(40, 3);
    const char* stops[] = {"\x01never", stop.c_str()};
    Session s(model.m);
    Sampler sampler(1, 65);
    ember_generate_params gp = ember_generate_default_params();
    gp.max_tokens = 100;
    gp.echo_prompt = 1;
    gp.stop = stops;
    gp.n_stop = 2;
    std::pair<std::string, std::vector<int32_t>> got;
    ember_generate_result res;
    REQUIRE(ember_generate(s.s, sampler.s, "ROMEO:", &gp, collect, &got, &res) == EMBER_OK);
    CHECK(res.stop_reason == EMBER_STOP_STOP_STRING);
    CHECK(got.first == want.substr(0, want.find(stop, 6)));

    Session s2(model.m);
    Sampler sampler2(1, 65);
    int n = 0;
    auto stop_at_10 = [](int32_t token, const char*, size_t, void* user) -> int {
      return token >= 0 && ++*static_cast<int*>(user) == 10;
    };
    REQUIRE(ember_generate(s2.s, sampler2.s, "ROMEO:", nullptr, stop_at_10, &n, &res) == EMBER_OK);
    CHECK(res.stop_reason == EMBER_STOP_CALLBACK);
    CHECK(res.n_generated == 10);

    Session s3(model.m);
    Sampler sampler3(1, 65);
    int calls = 0;
    REQUIRE(ember_session_set_abort_callback(s3.s, [](void* u) -> int { return ++*static_cast<int*>(u) > 5; }, &calls) == EMBER_OK);
    REQUIRE(ember_generate(s3.s, sampler3.s, "ROMEO:", nullptr, nullptr, nullptr, &res) == EMBER_OK);
    CHECK(res.stop_reason == EMBER_STOP_ABORTED);
    CHECK(res.n_generated == 5);  // the prompt asked once, then 4 decodes; the 5th decode refused
  }
  {
    // Sampler: the C++ sampler's tokens.
    Sampler sampler(9, 65);
    ember::SamplerParams p;
    p.seed = 9;
    auto ref = ember::Sampler::create(p, 65);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0, 3);
    std::vector<float> logits(65);
    std::vector<int32_t> hist;
    for (int i = 0; i < 200; ++i) {
      for (float& x : logits) x = nd(rng);
      int32_t a = -1;
      REQUIRE(ember_sampler_sample(sampler.s, logits.data(), hist.data(), hist.size(), &a) == EMBER_OK);
      CHECK(a == ref->sample(logits.data(), hist.data(), hist.size()));
      hist.push_back(a);
    }
    ember_sampler_params bad = ember_sampler_default_params();
    bad.top_p = 0;
    ember_sampler* s = nullptr;
    CHECK(ember_sampler_create(&bad, 65, &s) == EMBER_INVALID_ARGUMENT);
    CHECK(error_mentions("top_p"));
  }
}

TEST_CASE("capi: classification on a model with a classifier head; labels") {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/nanogpt");
  REQUIRE_MESSAGE(spec.ok(), spec.status().message());
  spec->config.n_classes = 3;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0, 0.3f);
  for (const char* name : {"cls.weight", "cls.bias"}) {
    ember::TensorData t;
    t.name = name;
    t.shape = name[4] == 'w' ? std::vector<uint64_t>{3, spec->config.n_embd} : std::vector<uint64_t>{3};
    std::vector<float> v(t.shape.size() == 2 ? 3 * spec->config.n_embd : 3);
    for (float& x : v) x = nd(rng);
    t.data.resize(v.size() * 4);
    std::memcpy(t.data.data(), v.data(), t.data.size());
    spec->tensors.push_back(std::move(t));
  }
  spec->metadata["classifier.labels"] = "ham,spam,eggs";
  spec->metadata["classifier.start_id"] = "0";
  spec->metadata["classifier.extract_id"] = "1";
  const std::string path = ember_test::temp_dir() + "/ember_capi_cls_" + std::to_string(getpid()) + ".ember";
  REQUIRE(ember::write_model_file(*spec, path).ok());
  Model model(path);
  auto cpp = ember::Model::load(path);
  REQUIRE(cpp.ok());
  std::remove(path.c_str());

  const char* const* labels = nullptr;
  size_t n = 0;
  REQUIRE(ember_model_labels(model.m, &labels, &n) == EMBER_OK);
  REQUIRE(n == 3);
  CHECK(std::string(labels[0]) == "ham");
  CHECK(std::string(labels[2]) == "eggs");
  Session s(model.m);
  float probs[3];
  CHECK(ember_classify(s.s, "abc", 3, probs, 2) == EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions("3 classes"));
  REQUIRE(ember_classify(s.s, "First Citizen", 13, probs, 3) == EMBER_OK);
  CHECK(std::fabs(probs[0] + probs[1] + probs[2] - 1.0f) < 1e-5f);
  // The C++ way: the same probabilities.
  auto info = ember::classifier_info(**cpp);
  auto ids = ember::classifier_input(**cpp, *info, "First Citizen");
  auto ref = ember::Session::create(*cpp, {});
  REQUIRE((*ref)->prefill(ids->data(), ids->size()).ok());
  float want[3];
  REQUIRE((*ref)->classify(want).ok());
  CHECK(std::memcmp(probs, want, sizeof want) == 0);
  float again[3];
  REQUIRE(ember_session_classify(s.s, again, 3) == EMBER_OK);
  CHECK(std::memcmp(again, want, sizeof want) == 0);
  CHECK(ember_session_classify(s.s, again, 2) == EMBER_INVALID_ARGUMENT);

  Model plain(model_path());
  CHECK(ember_model_labels(plain.m, &labels, &n) == EMBER_INVALID_ARGUMENT);
  CHECK(error_mentions("no classifier head"));
  CHECK(labels == nullptr);
  CHECK(n == 0);
}
