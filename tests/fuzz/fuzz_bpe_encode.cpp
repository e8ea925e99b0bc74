// Fuzz target "bpe_encode": arbitrary bytes through GPT-2's real tokenizer (encoder.json + vocab.bpe,
// 50257 tokens, 50000 merges) and a character vocabulary, and through Utf8Stream in arbitrary pieces.
// Invariants: valid UTF-8 encodes and decodes back exactly (never to the end-of-text id); invalid UTF-8
// fails naming the first bad byte; streamed output is always valid UTF-8 and, for valid input, equals it.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "ember/convert.h"
#include "ember/tokenizer.h"

namespace {

std::string data_dir() {
  const char* d = std::getenv("EMBER_TEST_DATA");
  return d ? d : EMBER_FUZZ_TEST_DATA;
}

const ember::Tokenizer* g_bpe = nullptr;
const ember::Tokenizer* g_chars = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto bpe = ember::load_gpt2_tokenizer(data_dir() + "/gpt2/encoder.json", data_dir() + "/gpt2/vocab.bpe");
  if (!bpe.ok()) {
    std::fprintf(stderr, "fuzz_bpe_encode: %s (set EMBER_TEST_DATA to tests/data)\n", bpe.status().message().c_str());
    std::exit(1);
  }
  g_bpe = new ember::Tokenizer(std::move(bpe).value());
  std::vector<std::string> syms;
  for (char ch : std::string("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")) syms.emplace_back(1, ch);
  syms.push_back("\xc3\xa9");          // é
  syms.push_back("\xe2\x82\xac");      // €
  syms.push_back("\xf0\x9f\x98\x80");  // U+1F600
  g_chars = new ember::Tokenizer(ember::Tokenizer::chars(syms).value());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  size_t bad = 0;
  const bool valid = ember::is_valid_utf8(in, &bad);
  if (!valid) check(bad < size && ember::is_valid_utf8(in.substr(0, bad)), "first bad byte misreported");

  auto ids = g_bpe->encode(in);
  if (valid) {
    check(ids.ok(), "valid UTF-8 failed to encode");
    for (int32_t id : *ids) check(id >= 0 && id < g_bpe->n_vocab() && id != g_bpe->eot_id(), "bad id from encode");
    auto back = g_bpe->decode(*ids);
    check(back.ok() && *back == in, "decode(encode(x)) != x");
    ember::Utf8Stream stream;
    std::string streamed;
    for (int32_t id : *ids) streamed += stream.push(g_bpe->token_bytes(id));
    streamed += stream.flush();
    check(streamed == in, "streamed tokens differ from the text");
  } else {
    check(!ids.ok() && ids.status().message().find("byte offset " + std::to_string(bad)) != std::string::npos,
          "invalid UTF-8 not reported at its first bad byte");
  }

  auto cids = g_chars->encode(in);
  if (cids.ok()) {
    auto back = g_chars->decode(*cids);
    check(back.ok() && *back == in, "char decode(encode(x)) != x");
  }

  // Arbitrary bytes in arbitrary pieces (the first byte picks the piece length).
  ember::Utf8Stream stream;
  std::string out;
  const size_t step = size ? 1 + data[0] % 7 : 1;
  for (size_t i = 0; i < size; i += step) {
    const std::string piece = stream.push(in.substr(i, step));
    check(ember::is_valid_utf8(piece), "Utf8Stream emitted invalid UTF-8");
    out += piece;
  }
  out += stream.flush();
  check(ember::is_valid_utf8(out), "Utf8Stream flush emitted invalid UTF-8");
  if (valid) check(out == in, "Utf8Stream changed valid UTF-8");
  return 0;
}
