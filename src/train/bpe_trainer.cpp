// bpe_trainer.cpp - byte-level BPE training with incremental pair counts (see ember/bpe_trainer.h).
//
// State: the distinct pieces (words) as token-id sequences with their corpus counts; for every adjacent
// pair its weighted count and the words it may occur in (a superset: entries go stale as words change,
// and are skipped); a max-heap of (count, pair) entries, refreshed by pushing a new entry whenever a
// count changes and validated against the current count when popped. A merge rewrites only the words
// on its pair's list and applies the net change of each pair count.
#include "ember/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>

#include "tokenizer/pretokenize.h"

namespace ember {
namespace {

constexpr uint32_t kMaxVocab = 1u << 24;

inline uint64_t pair_key(int32_t l, int32_t r) {
  return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
}
inline int32_t key_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
inline int32_t key_right(uint64_t k) { return static_cast<int32_t>(k & 0xffffffffu); }

struct Word {
  std::vector<int32_t> sym;
  int64_t count = 0;
  uint64_t stamp = 0;  // last merge that visited this word (dedups the pair's word list)
};

struct PairInfo {
  int64_t count = 0;
  std::vector<uint32_t> words;  // may hold duplicates and words that no longer contain the pair
};

struct HeapEntry {
  int64_t count;
  uint64_t key;
  // std::priority_queue pops the "largest": the highest count, then the smallest (left, right).
  bool operator<(const HeapEntry& o) const { return count != o.count ? count < o.count : key > o.key; }
};

}  // namespace

Result<Tokenizer> train_bpe(const std::vector<std::string_view>& texts, const BpeTrainOptions& opts,
                            BpeTrainStats* stats) {
  const uint32_t extra = opts.end_of_text ? 1 : 0;
  if (opts.vocab_size < 256 + extra || opts.vocab_size > kMaxVocab) {
    return invalid_argument("train_bpe: vocab_size " + std::to_string(opts.vocab_size) + " is outside [" +
                            std::to_string(256 + extra) + ", " + std::to_string(kMaxVocab) + "] (256 byte tokens" +
                            (extra ? " + end of text" : "") + ")");
  }
  // 1. Count the pieces.
  std::unordered_map<std::string_view, int64_t> piece_count;
  uint64_t n_pieces = 0;
  for (size_t t = 0; t < texts.size(); ++t) {
    const std::string_view text = texts[t];
    size_t bad = 0;
    if (!is_valid_utf8(text, &bad)) {
      return invalid_argument("train_bpe: text " + std::to_string(t) + " is not valid UTF-8 (byte offset " +
                              std::to_string(bad) + ")");
    }
    for (size_t pos = 0; pos < text.size();) {
      const size_t end = detail::next_pretoken(text, pos);
      ++piece_count[text.substr(pos, end - pos)];
      ++n_pieces;
      pos = end;
    }
  }
  // Words in byte order of their text, so that every container below is filled in a fixed order.
  std::vector<std::pair<std::string_view, int64_t>> sorted(piece_count.begin(), piece_count.end());
  piece_count.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    words[w].count = sorted[w].second;
    words[w].sym.reserve(sorted[w].first.size());
    for (unsigned char c : sorted[w].first) words[w].sym.push_back(c);
  }
  sorted.clear();
  sorted.shrink_to_fit();

  // 2. Initial pair counts.
  std::unordered_map<uint64_t, PairInfo> pairs;
  for (uint32_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t>& s = words[w].sym;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      PairInfo& p = pairs[pair_key(s[i], s[i + 1])];
      p.count += words[w].count;
      if (p.words.empty() || p.words.back() != w) p.words.push_back(w);
    }
  }
  std::vector<HeapEntry> initial;
  initial.reserve(pairs.size());
  for (const auto& [k, p] : pairs) initial.push_back({p.count, k});
  std::priority_queue<HeapEntry> heap(std::less<HeapEntry>(), std::move(initial));

  // 3. Merge.
  std::vector<std::string> tokens(256);
  for (int b = 0; b < 256; ++b) tokens[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) id_of.emplace(tokens[static_cast<size_t>(b)], b);
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<std::pair<uint64_t, int64_t>> delta;  // (pair, count change) of one merge
  std::vector<int32_t> merged;
  uint64_t stamp = 0;
  int64_t last_count = 0;
  const size_t target = opts.vocab_size - extra;
  while (tokens.size() < target) {
    if (heap.empty()) {
      return invalid_argument("train_bpe: the text runs out of pairs to merge at " +
                              std::to_string(tokens.size() + extra) + " tokens (vocab_size " +
                              std::to_string(opts.vocab_size) + " asked for); use a smaller vocabulary or more text");
    }
    const HeapEntry top = heap.top();
    heap.pop();
    auto it = pairs.find(top.key);
    if (it == pairs.end() || it->second.count != top.count) continue;  // stale entry
    const int32_t a = key_left(top.key), b = key_right(top.key);
    std::string bytes = tokens[static_cast<size_t>(a)] + tokens[static_cast<size_t>(b)];
    int32_t c;
    auto found = id_of.find(bytes);
    if (found != id_of.end()) {
      c = found->second;  // another split of an existing token
    } else {
      c = static_cast<int32_t>(tokens.size());
      id_of.emplace(bytes, c);
      tokens.push_back(std::move(bytes));
    }
    merges.emplace_back(a, b);
    last_count = top.count;
    ++stamp;

    std::vector<uint32_t> where = std::move(it->second.words);
    pairs.erase(it);  // its count drops to 0: left-to-right merging leaves no (a, b) behind
    delta.clear();
    for (uint32_t w : where) {
      Word& word = words[w];
      if (word.stamp == stamp) continue;
      word.stamp = stamp;
      const std::vector<int32_t>& s = word.sym;
      merged.clear();
      bool changed = false;
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(c);
          ++i;
          changed = true;
        } else {
          merged.push_back(s[i]);
        }
      }
      if (!changed) continue;  // stale list entry
      // Net change: every pair of the old word out, every pair of the new word in. Only pairs that
      // contain c are new to this word, so only those need the word on their list.
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        if (k != top.key) delta.emplace_back(k, -word.count);
      }
      for (size_t i = 0; i + 1 < merged.size(); ++i) {
        const uint64_t k = pair_key(merged[i], merged[i + 1]);
        delta.emplace_back(k, word.count);
        if (merged[i] == c || merged[i + 1] == c) {
          std::vector<uint32_t>& list = pairs[k].words;
          if (list.empty() || list.back() != w) list.push_back(w);
        }
      }
      word.sym.swap(merged);
    }
    std::sort(delta.begin(), delta.end());
    for (size_t i = 0; i < delta.size();) {
      const uint64_t k = delta[i].first;
      int64_t d = 0;
      for (; i < delta.size() && delta[i].first == k; ++i) d += delta[i].second;
      if (d == 0) continue;
      auto p = pairs.find(k);
      if (p == pairs.end()) p = pairs.emplace(k, PairInfo{}).first;
      p->second.count += d;
      if (p->second.count <= 0) {
        pairs.erase(p);
      } else {
        heap.push({p->second.count, k});
      }
    }
  }

  int32_t eot = -1;
  if (opts.end_of_text) {
    eot = static_cast<int32_t>(tokens.size());
    tokens.emplace_back("<|endoftext|>");
  }
  if (stats) {
    stats->pieces = n_pieces;
    stats->unique_pieces = words.size();
    stats->merges = merges.size();
    stats->last_count = static_cast<uint64_t>(last_count);
    stats->tokens = 0;
    for (const Word& w : words) stats->tokens += static_cast<uint64_t>(w.count) * w.sym.size();
  }
  Result<Tokenizer> tok = Tokenizer::gpt2_bpe(std::move(tokens), std::move(merges), eot);
  if (!tok.ok()) return tok.status().with_context("train_bpe");
  return tok;
}

}  // namespace ember
