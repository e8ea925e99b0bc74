// Fuzz target "session_state": bytes as Session::restore_state sees them (a prompt cache read back from
// disk or the network), restored into an f32-KV and an int8-KV session of the committed seed model
// tests/fuzz/corpus/model/int8_preln_chars.ember (n_vocab 12, n_ctx 6; the seeds in
// tests/fuzz/corpus/session_state are its states). Invariants: a refused state leaves the session exactly
// as it was (n_past, tokens, logits) and says why; a restored one has n_past <= n_ctx and ids in the
// vocabulary, saves again to a state that restores, and decodes and samples like any session.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "ember/model.h"
#include "ember/sampler.h"
#include "ember/session.h"

namespace {

struct Fixture {
  std::shared_ptr<const ember::Model> model;
  std::unique_ptr<ember::Session> sessions[2];  // f32 KV, int8 KV
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    const std::string path = std::string(EMBER_FUZZ_TEST_DATA) + "/../fuzz/corpus/model/int8_preln_chars.ember";
    auto m = ember::Model::load(path);
    if (!m.ok()) {
      std::fprintf(stderr, "fuzz_session_state: %s\n", m.status().message().c_str());
      std::abort();
    }
    x.model = *m;
    for (int i = 0; i < 2; ++i) {
      ember::SessionOptions so;
      so.n_batch = 4;
      so.kv_type = i ? ember::KvType::kInt8 : ember::KvType::kF32;
      x.sessions[i] = ember::Session::create(x.model, so).value();
    }
    return x;
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = fixture();
  const size_t V = f.model->config().n_vocab, T = f.model->config().n_ctx;
  // An exact-size copy: ASan's redzone right behind the last byte.
  std::unique_ptr<uint8_t[]> bytes(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(bytes.get(), data, size);
  for (auto& sp : f.sessions) {
    ember::Session& s = *sp;
    s.reset();
    const int32_t mine[2] = {1, 2};
    check(s.prefill(mine, 2).ok(), "prefill of the fixture");
    const std::vector<float> before(s.logits(), s.logits() + V);
    const ember::Status st = s.restore_state(bytes.get(), size);
    if (!st.ok()) {
      check(st.message().rfind("session state: ", 0) == 0, "a refusal without its 'session state: ' message");
      check(s.n_past() == 2 && s.tokens()[0] == 1 && s.tokens()[1] == 2, "a refused state changed the cache");
      check(s.logits() && std::memcmp(s.logits(), before.data(), V * sizeof(float)) == 0,
            "a refused state changed the logits");
      continue;
    }
    check(s.n_past() <= T, "restored n_past beyond n_ctx");
    for (size_t i = 0; i < s.n_past(); ++i)
      check(s.tokens()[i] >= 0 && static_cast<size_t>(s.tokens()[i]) < V, "restored id outside the vocabulary");
    auto again = s.save_state();
    check(again.ok(), "save after restore failed");
    check(s.restore_state(again->data(), again->size()).ok(), "a saved state does not restore");
    if (s.logits()) {
      ember::SamplerParams p;
      p.seed = 1;
      auto sampler = ember::Sampler::create(p, V);
      const int32_t next = sampler->sample(s.logits(), s.tokens(), s.n_past());
      check(next >= 0 && static_cast<size_t>(next) < V, "sampled id outside the vocabulary");
    }
    if (s.n_past() < T) check(s.decode(0).ok(), "decode after restore failed");
    else check(s.decode(0).code() == ember::StatusCode::kContextFull, "decode past n_ctx did not say context full");
  }
  return 0;
}
