// ember/tokenizer.h - GPT-2 byte-level BPE and character vocabularies (runtime side).
//
//   const ember::Tokenizer& tok = model->tokenizer();
//   ember::Result<std::vector<int32_t>> ids = tok.encode("Hello world");
//   ember::Utf8Stream out;                       // streaming decode without broken UTF-8
//   for (int32_t id : ids.value()) fputs(out.push(tok.token_bytes(id)).c_str(), stdout);
//   fputs(out.flush().c_str(), stdout);
//
// Token strings are stored as raw bytes (not GPT-2's byte-to-unicode form). BPE merges are pairs of
// token ids in rank order; the merged token is the one whose bytes are the concatenation.
// Thread safety: a constructed Tokenizer is immutable; encode/decode may run concurrently from any
// number of threads. A Utf8Stream is one stream's state: not thread-safe, use one per thread.
// Untrusted input: encode() accepts any bytes (invalid UTF-8 is an error naming the first bad byte);
// gpt2_bpe() and chars() check a vocabulary completely before use (fuzzed: tests/fuzz).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"

namespace ember {

enum class TokenizerKind : uint8_t { kNone = 0, kGpt2Bpe = 1, kChars = 2 };
EMBER_API const char* tokenizer_kind_name(TokenizerKind k);

class EMBER_API Tokenizer {
 public:
  Tokenizer();  // kind() == kNone: encode fails, decode of ids fails
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // GPT-2 byte-level BPE. `tokens[id]` are raw bytes; every single byte 0..255 must be a token.
  // `merges[rank]` = (left id, right id); their concatenation must be a token. `eot_id` (-1 if none)
  // names the end-of-text token, which encode() never produces from ordinary text.
  static Result<Tokenizer> gpt2_bpe(std::vector<std::string> tokens,
                                    std::vector<std::pair<int32_t, int32_t>> merges, int32_t eot_id);
  // Character vocabulary: `symbols[id]` is one UTF-8 encoded code point (e.g. the 65 characters of
  // tiny shakespeare). encode() fails on a character not in the vocabulary, naming it.
  static Result<Tokenizer> chars(std::vector<std::string> symbols);

  TokenizerKind kind() const;
  int32_t n_vocab() const;
  int32_t eot_id() const;  // -1 if none

  // Ordinary text to ids (no special tokens). Fails on invalid UTF-8, naming the byte offset.
  Result<std::vector<int32_t>> encode(std::string_view text) const;
  // Raw bytes of one token ("" for an out-of-range id). May be part of a UTF-8 sequence.
  const std::string& token_bytes(int32_t id) const;
  // True for ids that stand for no text: the end-of-text token, and ids outside [0, n_vocab()) that a
  // model's larger vocabulary has (the start and extract tokens of a fine-tuned classifier, the padding
  // of a nanoGPT checkpoint's 50304 ids).
  bool is_special(int32_t id) const;
  // What to show for one token: token_bytes(id) for a text token (raw bytes, possibly part of a UTF-8
  // sequence), and for an id outside [0, n_vocab()) the printable placeholder "<|token N|>". Never fails.
  std::string piece(int32_t id) const;
  // Concatenated bytes of `ids`; fails on an id outside [0, n_vocab).
  Result<std::string> decode(const std::vector<int32_t>& ids) const;

  // For serialization.
  const std::vector<std::string>& tokens() const;
  const std::vector<std::pair<int32_t, int32_t>>& merges() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Joins token byte pieces into text that never ends inside a UTF-8 sequence: push() returns the
// longest complete prefix and keeps the rest; flush() returns what is left, with U+FFFD for
// bytes that never formed a valid sequence. Invalid bytes in the middle also become U+FFFD.
class EMBER_API Utf8Stream {
 public:
  std::string push(std::string_view bytes);
  std::string flush();
  // The same, appending to *out instead of returning a new string: with reserve() and an `out` of enough
  // capacity, neither allocates (the generate loop, include/ember/generate.h).
  void push(std::string_view bytes, std::string* out);
  void flush(std::string* out);
  void reserve(size_t pending_bytes);  // room for pieces up to this long without allocating

 private:
  std::string pending_;
};

// True if `s` is valid UTF-8; otherwise *bad_offset (if given) is the first bad byte.
EMBER_API bool is_valid_utf8(std::string_view s, size_t* bad_offset = nullptr);

}  // namespace ember
