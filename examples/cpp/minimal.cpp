// examples/cpp/minimal.cpp - the smallest complete ember program: load a model, stream sampled text.
//
//   c++ -std=c++17 minimal.cpp $(pkg-config --cflags --libs ember) -o minimal
//   ./minimal models/shakespeare-char.ember "ROMEO:" 100 1
//
// Arguments: MODEL [PROMPT [N [SEED]]] (defaults "ROMEO:", 100 tokens, seed 1). Prints the prompt, then
// each sampled token as it comes (default sampler: temperature 0.8, top-k 40, top-p 0.95, seeded, so a
// seed repeats a run on every platform). Stops after N tokens, at the model's end-of-text token or when
// the context (n_ctx) is full. The output is that of
//   ember-generate -m MODEL -p PROMPT -n N --seed SEED -q
// (tools/test.sh checks it, built against the installed library: shared, static, CMake, meson subproject,
// and cross-built for aarch64).
#include <ember/model.h>
#include <ember/sampler.h>
#include <ember/session.h>
#include <ember/tokenizer.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

int fail(const ember::Status& st) {
  std::fprintf(stderr, "minimal: %s\n", st.message().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 5) {
    std::fprintf(stderr, "usage: %s MODEL [PROMPT [N [SEED]]]\n", argv[0]);
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "ROMEO:";
  const long n_predict = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 100;
  ember::SamplerParams params;  // temperature 0.8, top-k 40, top-p 0.95
  params.seed = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 1;

  // The model: mapped read-only and verified; shared by every session made from it.
  ember::Result<std::shared_ptr<const ember::Model>> model = ember::Model::load(argv[1]);
  if (!model.ok()) return fail(model.status());
  const ember::Tokenizer& tok = (*model)->tokenizer();
  ember::Result<std::vector<int32_t>> ids = tok.encode(prompt);
  if (!ids.ok()) return fail(ids.status());
  if (ids->empty() || ids->size() > (*model)->config().n_ctx) {
    std::fprintf(stderr, "minimal: the prompt must be 1 to %u tokens\n", (*model)->config().n_ctx);
    return 1;
  }

  // A session owns the KV cache and scratch, sized once here; prefill and decode never allocate.
  ember::SessionOptions so;
  so.n_threads = 1;
  ember::Result<std::unique_ptr<ember::Session>> session = ember::Session::create(*model, so);
  if (!session.ok()) return fail(session.status());
  ember::Result<ember::Sampler> sampler = ember::Sampler::create(params, (*model)->config().n_vocab);
  if (!sampler.ok()) return fail(sampler.status());

  ember::Status st = (*session)->prefill(ids->data(), ids->size());
  if (!st.ok()) return fail(st);
  ember::Utf8Stream out;  // never prints half a UTF-8 character
  std::fputs(out.push(prompt).c_str(), stdout);
  std::vector<int32_t> history = *ids;
  for (long i = 0; i < n_predict; ++i) {
    const int32_t next = sampler->sample((*session)->logits(), history.data(), history.size());
    if (next == tok.eot_id()) break;
    history.push_back(next);
    std::fputs(out.push(tok.token_bytes(next)).c_str(), stdout);
    std::fflush(stdout);
    if (i + 1 == n_predict || (*session)->n_past() == (*session)->n_ctx()) break;
    st = (*session)->decode(next);
    if (!st.ok()) return fail(st);
  }
  std::fputs(out.flush().c_str(), stdout);
  std::fputs("\n", stdout);
  return 0;
}
