// Small helpers shared by the training sources (ops, fine-tuning, pretraining).
#pragma once

#include <chrono>
#include <cstdint>

#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {
namespace train {

inline uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A copy of a tokenizer (Tokenizer is move-only), for the model files a run writes.
inline Result<Tokenizer> clone_tokenizer(const Tokenizer& t) {
  if (t.kind() == TokenizerKind::kChars) return Tokenizer::chars(t.tokens());
  return Tokenizer::gpt2_bpe(t.tokens(), t.merges(), t.eot_id());
}

}  // namespace train
}  // namespace ember
