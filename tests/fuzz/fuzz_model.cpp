// Fuzz target "model": a .ember file, as Model::load sees it (FlatBuffers verification, then the
// semantic checks of EmberFile and the model: tensors, shapes, dtypes, scales, tokenizer), and when it
// loads and is small, what a user does next: encode and decode with its tokenizer, prefill and decode a
// few tokens in a session, and sample from its logits (a hostile model may produce inf or NaN).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "check.h"
#include "ember/model.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "format/ember_file.h"
#include "model/model_impl.h"

namespace {

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A mapping is page aligned; from_buffer needs 64-byte alignment. An exact-size copy keeps ASan's
  // redzone right behind the last byte.
  std::unique_ptr<uint8_t, FreeDeleter> buf(static_cast<uint8_t*>(std::aligned_alloc(64, (size + 63) / 64 * 64)));
  if (size) std::memcpy(buf.get(), data, size);
  auto file = ember::EmberFile::from_buffer(buf.get(), size, "fuzz.ember");
  if (!file.ok()) {
    check(!file.status().message().empty(), "an error without a message");
    return 0;
  }
  auto loaded = ember::ModelImpl::load_file(std::move(file).value());
  if (!loaded.ok()) {
    check(!loaded.status().message().empty(), "an error without a message");
    return 0;
  }
  std::shared_ptr<const ember::Model> model = std::move(loaded).value();
  const ember::ModelConfig& c = model->config();
  check(c.validate().ok(), "a loaded model has an invalid config");
  uint64_t bytes = 0;
  for (const ember::TensorInfo& t : model->tensors()) bytes += t.bytes;
  check(bytes <= model->file_size(), "tensors larger than the file");

  const ember::Tokenizer& tok = model->tokenizer();
  if (tok.kind() != ember::TokenizerKind::kNone) {
    auto ids = tok.encode("ROMEO: Hello, world! 123 \xc3\xa9\xe2\x82\xac");
    if (ids.ok()) {
      auto text = tok.decode(*ids);
      check(text.ok() && *text == "ROMEO: Hello, world! 123 \xc3\xa9\xe2\x82\xac", "decode(encode(x)) != x");
    }
    for (int32_t id = 0; id < tok.n_vocab() && id < 512; ++id) (void)tok.token_bytes(id);
  }

  // A forward pass only for small models: the fuzzer's time goes to parsing, and an honest file's
  // compute is bounded by its size anyway.
  const uint64_t work = uint64_t{c.n_layer} * c.n_embd * (c.n_embd + c.n_ff) + uint64_t{c.n_vocab} * c.n_embd;
  const uint64_t cache = uint64_t{c.n_layer} * c.n_ctx * c.n_embd;
  if (work > (1u << 18) || cache > (1u << 18)) return 0;
  ember::SessionOptions so;
  so.n_batch = 4;
  auto session = ember::Session::create(model, so);
  check(session.ok(), "Session::create failed on a loaded model");
  ember::Session& s = **session;
  const int32_t prompt[3] = {0, static_cast<int32_t>(c.n_vocab - 1), static_cast<int32_t>(c.n_vocab / 2)};
  const size_t n = c.n_ctx < 3 ? c.n_ctx : 3;
  ember::Status st = s.prefill(prompt, n);
  check(st.ok(), "prefill of in-range tokens failed");
  ember::SamplerParams sp;
  sp.top_p = 0.9f;
  sp.top_k = 0;
  sp.repeat_penalty = 1.1f;
  auto sampler = ember::Sampler::create(sp, c.n_vocab);
  check(sampler.ok(), "Sampler::create failed");
  const int32_t next = sampler->sample(s.logits(), prompt, n);
  check(next >= 0 && static_cast<uint32_t>(next) < c.n_vocab, "sampled token outside the vocabulary");
  sp.temperature = 0.0f;
  auto greedy = ember::Sampler::create(sp, c.n_vocab);
  const int32_t g = greedy->sample(s.logits(), prompt, n);
  check(g >= 0 && static_cast<uint32_t>(g) < c.n_vocab, "greedy token outside the vocabulary");
  if (s.n_past() < s.n_ctx()) check(s.decode(next).ok(), "decode of a sampled token failed");
  else check(s.decode(next).code() == ember::StatusCode::kContextFull, "decode past n_ctx did not say context full");
  if (c.n_classes > 0) {
    std::unique_ptr<float[]> probs(new float[c.n_classes]);
    check(s.classify(probs.get()).ok(), "classify failed on a model with a head");
  }
  return 0;
}
