// Fuzz target "gpt2_vocab": GPT-2 BPE tokenizer files (vocab.json / encoder.json and merges.txt /
// vocab.bpe). The input is the JSON file, a NUL byte, then the merges file (JSON text holds no raw NUL).
// A tokenizer that loads must then encode text and decode it back exactly: the merges part of the input
// and a fixed sentence.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "convert/tokenizer_files.h"

namespace {
void round_trip(const ember::Tokenizer& tok, const std::string& text) {
  auto ids = tok.encode(text);
  if (!ember::is_valid_utf8(text)) {
    check(!ids.ok(), "invalid UTF-8 encoded");
    return;
  }
  check(ids.ok(), "valid UTF-8 failed to encode with a complete byte vocabulary");
  for (int32_t id : *ids) check(id >= 0 && id < tok.n_vocab() && id != tok.eot_id(), "bad id from encode");
  auto back = tok.decode(*ids);
  check(back.ok() && *back == text, "decode(encode(x)) != x");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string vocab = in.substr(0, nul);
  const std::string merges = nul == std::string::npos ? std::string() : in.substr(nul + 1);
  auto tok = ember::parse_gpt2_tokenizer(vocab, "vocab.json", merges, "merges.txt");
  if (!tok.ok()) {
    check(!tok.status().message().empty(), "an error without a message");
    return 0;
  }
  check(tok->kind() == ember::TokenizerKind::kGpt2Bpe && tok->n_vocab() >= 256, "a BPE vocabulary without its bytes");
  round_trip(*tok, merges);
  round_trip(*tok, "Hello world, it's 2024! \xc3\xa9t\xc3\xa9  \n\n");
  return 0;
}
