// ember/bpe_trainer.h - host side: learn a GPT-2-style byte-level BPE vocabulary from text.
//
//   std::vector<std::string_view> texts = {train_text};
//   ember::BpeTrainOptions o;  o.vocab_size = 4096;
//   ember::BpeTrainStats stats;
//   ember::Result<ember::Tokenizer> tok = ember::train_bpe(texts, o, &stats);
//   // tok->kind() == kGpt2Bpe: spec.tokenizer = std::move(*tok); ember::write_model_file(spec, ...)
//
// The algorithm is BPE (Sennrich et al. 2016) on bytes, as GPT-2's vocabulary was made (Radford et al.
// 2019) and as Hugging Face's ByteLevel BPE trainer and minbpe do it: GPT-2's pre-tokenizer splits each
// text into pieces (src/tokenizer/pretokenize.h), equal pieces are counted, each piece starts as its
// UTF-8 bytes, and then, until the vocabulary has vocab_size tokens, the most frequent adjacent pair of
// tokens (counted over all pieces, overlapping occurrences included, weighted by the piece's count) is
// merged everywhere, left to right within a piece. Ties go to the smaller (left id, right id). Pair
// counts are updated incrementally, so a merge costs the pieces that contain its pair, not the corpus.
//
// The result is the runtime's GPT-2 BPE tokenizer (Tokenizer::gpt2_bpe), stored in .ember files exactly
// like an imported GPT-2 vocabulary: ids 0..255 are the single bytes 0x00..0xFF (byte fallback: any
// UTF-8 text encodes, characters never seen in training included), then the learned tokens in merge
// order, then "<|endoftext|>" as the last id when `end_of_text` is set. Encoding the training text with
// the result reproduces the training segmentation exactly. If a merge yields bytes that are already a
// token (two different splits of one string), the merge is kept and maps to the existing id, as Hugging
// Face does; such merges add no token, so the merge count may exceed vocab_size - 257.
// Deterministic: the same texts and options give the same tokenizer (no hashing order leaks through).
// Part of libember_host; never prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

struct BpeTrainOptions {
  uint32_t vocab_size = 4096;  // n_vocab of the result: 256 bytes + learned tokens (+ end of text)
  bool end_of_text = true;     // add "<|endoftext|>" as the last id
};

struct BpeTrainStats {
  uint64_t pieces = 0;         // pre-tokenizer pieces in the texts
  uint64_t unique_pieces = 0;  // distinct pieces
  uint64_t merges = 0;         // merges learned (== tokenizer.merges().size())
  uint64_t tokens = 0;         // length of the texts in tokens after the last merge
  uint64_t last_count = 0;     // frequency of the last merged pair
};

// Learns a vocabulary of exactly opts.vocab_size tokens from `texts` (each valid UTF-8; the pieces never
// cross from one text into the next). Fails (kInvalidArgument) when vocab_size < 256 (+1 with
// end_of_text) or above 2^24, on invalid UTF-8 (naming the text and byte offset), and when the texts run
// out of pairs before the vocabulary is full (naming the largest size they support).
EMBER_API Result<Tokenizer> train_bpe(const std::vector<std::string_view>& texts, const BpeTrainOptions& opts,
                                      BpeTrainStats* stats = nullptr);

}  // namespace ember
