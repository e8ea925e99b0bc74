// Fuzz target "model_buffer": a model file's bytes handed to the C API (include/ember.h) in memory:
// ember_model_load_from_buffer (copied), and ember_model_load_from_memory in place, from a 64-byte
// aligned copy (accepted exactly when the copying load is, with the same fingerprint) and from a
// misaligned one (always refused). When a model loads and is small: its config, tokenizer round trip,
// a session's prefill, decode and a sampled id, as an application would use it. Seeds: the model
// target's (tests/fuzz/corpus/model_buffer links to tests/fuzz/corpus/model).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ember.h"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_model_buffer: invariant failed: %s (last error: %s)\n", what, ember_last_error());
    std::abort();
  }
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[size ? size : 1]);  // exact size: redzone right behind
  if (size) std::memcpy(copy.get(), data, size);
  ember_model* m = nullptr;
  const ember_status st = ember_model_load_from_buffer(copy.get(), size, "fuzz.ember", &m);
  check((st == EMBER_OK) == (m != nullptr), "a handle without EMBER_OK, or none with it");
  check(st == EMBER_OK || ember_last_error()[0] != '\0', "an error without a message");

  // In place: 64-byte aligned (padded allocation, so reads past `size` would not be caught here: the
  // copying load above has the exact-size buffer), and misaligned by 1.
  std::unique_ptr<uint8_t, FreeDeleter> aligned(static_cast<uint8_t*>(std::aligned_alloc(64, (size + 64) / 64 * 64 + 64)));
  if (size) std::memcpy(aligned.get(), data, size);
  ember_model* in_place = nullptr;
  const ember_status st2 = ember_model_load_from_memory(aligned.get(), size, "flash", &in_place);
  check((st2 == EMBER_OK) == (st == EMBER_OK), "in place and copied loads disagree");
  if (in_place) check(ember_model_fingerprint(in_place) == ember_model_fingerprint(m), "fingerprints differ");
  ember_model_free(in_place);
  if (size) std::memmove(aligned.get() + 1, aligned.get(), size);
  ember_model* mis = nullptr;
  check(ember_model_load_from_memory(aligned.get() + 1, size, "flash+1", &mis) == EMBER_INVALID_ARGUMENT && !mis,
        "a misaligned buffer was not refused");
  if (!m) return 0;

  ember_model_config c;
  check(ember_model_get_config(m, &c) == EMBER_OK, "config of a loaded model");
  check(c.n_vocab > 0 && c.n_ctx > 0 && c.n_tokens <= c.n_vocab, "config out of range");
  if (c.tokenizer != EMBER_TOKENIZER_NONE) {
    const char text[] = "ROMEO: Hello, world!";
    size_t n = 0;
    if (ember_tokenize(m, text, sizeof text - 1, nullptr, 0, &n) == EMBER_OK && n > 0) {
      std::unique_ptr<int32_t[]> ids(new int32_t[n]);
      check(ember_tokenize(m, text, sizeof text - 1, ids.get(), n, &n) == EMBER_OK, "tokenize with the size it gave");
      size_t len = 0;
      check(ember_detokenize(m, ids.get(), n, nullptr, 0, &len) == EMBER_OK, "detokenize length");
      std::unique_ptr<char[]> back(new char[len + 1]);
      check(ember_detokenize(m, ids.get(), n, back.get(), len + 1, &len) == EMBER_OK, "detokenize");
      check(len == sizeof text - 1 && std::memcmp(back.get(), text, len) == 0, "detokenize(tokenize(x)) != x");
    }
  }
  const uint64_t work = uint64_t{c.n_layer} * c.n_embd * (c.n_embd + c.n_ff) + uint64_t{c.n_vocab} * c.n_embd;
  const uint64_t cache = uint64_t{c.n_layer} * c.n_ctx * c.n_embd;
  if (work <= (1u << 18) && cache <= (1u << 18)) {
    ember_session_params sp = ember_session_default_params();
    sp.n_batch = 4;
    ember_session* s = nullptr;
    check(ember_session_create(m, &sp, &s) == EMBER_OK, "session of a loaded model");
    const int32_t prompt[2] = {0, static_cast<int32_t>(c.n_vocab - 1)};
    const size_t n = c.n_ctx < 2 ? c.n_ctx : 2;
    check(ember_session_prefill(s, prompt, n) == EMBER_OK, "prefill of in-range ids");
    ember_sampler* sampler = nullptr;
    check(ember_sampler_create(nullptr, c.n_vocab, &sampler) == EMBER_OK, "sampler");
    int32_t next = -1;
    check(ember_sampler_sample(sampler, ember_session_logits(s), prompt, n, &next) == EMBER_OK, "sample");
    check(next >= 0 && static_cast<uint32_t>(next) < c.n_vocab, "sampled id outside the vocabulary");
    const bool room = n < c.n_ctx;
    const ember_status d = ember_session_decode(s, next);
    check(room ? d == EMBER_OK : d == EMBER_CONTEXT_FULL, "decode after the prompt");
    ember_sampler_free(sampler);
    ember_session_free(s);
  }
  ember_model_free(m);
  return 0;
}
