// Fuzz target "char_vocab": character vocabulary files (a JSON array of characters, an object mapping
// characters to ids, or nanoGPT's meta with "stoi" / "itos"). A vocabulary that loads must encode its
// own characters back to their ids.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "convert/tokenizer_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  auto tok = ember::parse_char_tokenizer(in, "vocab_chars.json");
  if (!tok.ok()) {
    check(!tok.status().message().empty(), "an error without a message");
    return 0;
  }
  check(tok->kind() == ember::TokenizerKind::kChars && tok->n_vocab() > 0, "an empty character vocabulary loaded");
  std::string all;
  for (int32_t id = 0; id < tok->n_vocab(); ++id) all += tok->token_bytes(id);
  auto ids = tok->encode(all);
  check(ids.ok() && ids->size() == static_cast<size_t>(tok->n_vocab()), "a vocabulary does not encode its own characters");
  for (int32_t id = 0; id < tok->n_vocab(); ++id) check((*ids)[id] == id, "a character encodes to another id");
  (void)tok->encode(in);  // arbitrary text: ok or an error naming the character
  return 0;
}
