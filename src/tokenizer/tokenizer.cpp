// tokenizer.cpp - GPT-2 byte-level BPE and character vocabularies.
#include "ember/tokenizer.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include <utf8proc.h>

#include "core/visibility.h"
#include "tokenizer/pretokenize.h"

namespace ember {
namespace {

// Bytes as they can be shown in an error message: valid UTF-8 stays readable, control and invalid
// bytes become \xNN.
std::string printable(std::string_view s) {
  const bool utf8 = is_valid_utf8(s);
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && !utf8)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string quoted(std::string_view s) { return "'" + printable(s) + "'"; }

// (left id, right id) -> (rank, merged id). Open addressing: the lookup is the inner loop of BPE.
class MergeTable {
 public:
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };

  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
  }
  // False if the pair is already present (the existing entry is kept).
  bool insert(int32_t left, int32_t right, int32_t rank, int32_t id) {
    const uint64_t k = key(left, right);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return false;
      if (slots_[i].key == kEmpty) {
        slots_[i] = Slot{k, rank, id};
        return true;
      }
    }
  }
  const Slot* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t k = key(left, right);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == k) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^31, so never a real key
  static uint64_t key(int32_t l, int32_t r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Scratch space of one encode() call, reused across its words.
struct BpeScratch {
  struct Cand {
    int32_t rank, pos, left_id, right_id, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<int32_t> id, prev, next;
  std::vector<Cand> heap, deferred;
};

}  // namespace

struct EMBER_HIDDEN Tokenizer::Impl {
  TokenizerKind kind = TokenizerKind::kNone;
  std::vector<std::string> tokens;
  std::vector<std::pair<int32_t, int32_t>> merges;
  int32_t eot = -1;
  // BPE
  int32_t byte_id[256] = {};
  MergeTable merge_table;
  // Chars
  int32_t ascii_id[128] = {};
  std::unordered_map<int32_t, int32_t> char_id;  // non-ASCII code point -> id

  void bpe_word(std::string_view word, BpeScratch* s, std::vector<int32_t>* out) const;
  Result<std::vector<int32_t>> encode_bpe(std::string_view text) const;
  Result<std::vector<int32_t>> encode_chars(std::string_view text) const;
};

const char* tokenizer_kind_name(TokenizerKind k) {
  switch (k) {
    case TokenizerKind::kNone: return "none";
    case TokenizerKind::kGpt2Bpe: return "gpt2_bpe";
    case TokenizerKind::kChars: return "chars";
  }
  return "unknown";
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

TokenizerKind Tokenizer::kind() const { return impl_ ? impl_->kind : TokenizerKind::kNone; }
int32_t Tokenizer::n_vocab() const { return impl_ ? static_cast<int32_t>(impl_->tokens.size()) : 0; }
int32_t Tokenizer::eot_id() const { return impl_ ? impl_->eot : -1; }
// Function-local empties: safe to return from calls made during other files' static initialization.
const std::vector<std::string>& Tokenizer::tokens() const {
  static const std::vector<std::string> kNoTokens;
  return impl_ ? impl_->tokens : kNoTokens;
}
const std::vector<std::pair<int32_t, int32_t>>& Tokenizer::merges() const {
  static const std::vector<std::pair<int32_t, int32_t>> kNoMerges;
  return impl_ ? impl_->merges : kNoMerges;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  static const std::string kEmptyString;
  if (!impl_ || id < 0 || id >= n_vocab()) return kEmptyString;
  return impl_->tokens[static_cast<size_t>(id)];
}

bool Tokenizer::is_special(int32_t id) const { return id < 0 || id >= n_vocab() || id == eot_id(); }

std::string Tokenizer::piece(int32_t id) const {
  if (id >= 0 && id < n_vocab()) return impl_->tokens[static_cast<size_t>(id)];
  return "<|token " + std::to_string(id) + "|>";
}

Result<std::string> Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const int32_t n = n_vocab();
  size_t total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n) {
      return invalid_argument("decode: token id " + std::to_string(ids[i]) + " at position " +
                              std::to_string(i) + " is out of range [0, " + std::to_string(n) + ")");
    }
    total += impl_->tokens[static_cast<size_t>(ids[i])].size();
  }
  std::string out;
  out.reserve(total);
  for (int32_t id : ids) out += impl_->tokens[static_cast<size_t>(id)];
  return out;
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text) const {
  if (kind() == TokenizerKind::kNone) return invalid_argument("encode: the tokenizer is empty (kind none)");
  size_t bad = 0;
  if (!is_valid_utf8(text, &bad)) {
    return invalid_argument("encode: invalid UTF-8 at byte offset " + std::to_string(bad));
  }
  return impl_->kind == TokenizerKind::kGpt2Bpe ? impl_->encode_bpe(text) : impl_->encode_chars(text);
}

// ---- GPT-2 BPE ------------------------------------------------------------------------------------

Result<Tokenizer> Tokenizer::gpt2_bpe(std::vector<std::string> tokens,
                                      std::vector<std::pair<int32_t, int32_t>> merges, int32_t eot_id) {
  if (tokens.empty()) return invalid_argument("gpt2_bpe: the vocabulary is empty");
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("gpt2_bpe: vocabulary of " + std::to_string(tokens.size()) + " is too large");
  }
  const auto n = static_cast<int32_t>(tokens.size());
  if (eot_id < -1 || eot_id >= n) {
    return invalid_argument("gpt2_bpe: eot_id " + std::to_string(eot_id) + " is out of range [-1, " +
                            std::to_string(n) + ")");
  }
  auto impl = std::make_unique<Impl>();
  impl->kind = TokenizerKind::kGpt2Bpe;
  impl->eot = eot_id;

  // The end-of-text token stays out of the lookup so that ordinary text can never produce it.
  std::unordered_map<std::string_view, int32_t> by_bytes;
  by_bytes.reserve(tokens.size());
  for (int32_t id = 0; id < n; ++id) {
    const std::string& t = tokens[static_cast<size_t>(id)];
    if (id == eot_id) continue;
    if (t.empty()) return invalid_argument("gpt2_bpe: token " + std::to_string(id) + " is empty");
    auto [it, inserted] = by_bytes.emplace(t, id);
    if (!inserted) {
      return invalid_argument("gpt2_bpe: token " + std::to_string(id) + " " + quoted(t) +
                              " duplicates token " + std::to_string(it->second));
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = by_bytes.find(std::string_view(std::string(1, static_cast<char>(b))));
    if (it == by_bytes.end()) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "gpt2_bpe: no token for the single byte 0x%02X", b);
      return invalid_argument(buf);
    }
    impl->byte_id[b] = it->second;
  }
  impl->merge_table.reserve(merges.size());
  std::string cat;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [l, r] = merges[rank];
    const std::string where = "gpt2_bpe: merge " + std::to_string(rank);
    if (l < 0 || l >= n || r < 0 || r >= n) {
      return invalid_argument(where + " (" + std::to_string(l) + ", " + std::to_string(r) +
                              ") has an id out of range [0, " + std::to_string(n) + ")");
    }
    cat = tokens[static_cast<size_t>(l)] + tokens[static_cast<size_t>(r)];
    auto it = by_bytes.find(cat);
    if (it == by_bytes.end()) {
      return invalid_argument(where + ": " + quoted(tokens[static_cast<size_t>(l)]) + " + " +
                              quoted(tokens[static_cast<size_t>(r)]) + " = " + quoted(cat) +
                              " is not a token");
    }
    if (!impl->merge_table.insert(l, r, static_cast<int32_t>(rank), it->second)) {
      return invalid_argument(where + " (" + std::to_string(l) + ", " + std::to_string(r) +
                              ") repeats merge " +
                              std::to_string(impl->merge_table.find(l, r)->rank));
    }
  }
  by_bytes.clear();  // its keys point into `tokens`, which move next
  impl->tokens = std::move(tokens);
  impl->merges = std::move(merges);
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

// Applies merges to one pre-token exactly as GPT-2's encoder.py does: repeatedly take the lowest-rank
// pair present and merge all its occurrences left to right. A heap of candidate pairs keyed by
// (rank, position) gives that order in O(n log n); pairs created while one rank is being merged are
// deferred until that rank is done, so even a vocabulary whose merges are not in creation order is
// handled like the reference. Stale heap entries are dropped when popped.
void Tokenizer::Impl::bpe_word(std::string_view word, BpeScratch* s, std::vector<int32_t>* out) const {
  const auto n = static_cast<int32_t>(word.size());
  s->id.resize(word.size());
  s->prev.resize(word.size());
  s->next.resize(word.size());
  s->heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    s->id[i] = byte_id[static_cast<unsigned char>(word[i])];
    s->prev[i] = i - 1;
    s->next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto candidate = [&](int32_t pos, std::vector<BpeScratch::Cand>* into) {
    const int32_t right = s->next[pos];
    if (const MergeTable::Slot* m = merge_table.find(s->id[pos], s->id[right])) {
      into->push_back({m->rank, pos, s->id[pos], s->id[right], m->id});
    }
  };
  const auto cmp = std::greater<BpeScratch::Cand>();
  for (int32_t i = 0; i + 1 < n; ++i) candidate(i, &s->heap);
  std::make_heap(s->heap.begin(), s->heap.end(), cmp);

  while (!s->heap.empty()) {
    const int32_t round = s->heap.front().rank;
    s->deferred.clear();
    while (!s->heap.empty() && s->heap.front().rank == round) {
      std::pop_heap(s->heap.begin(), s->heap.end(), cmp);
      const BpeScratch::Cand c = s->heap.back();
      s->heap.pop_back();
      const int32_t right = s->next[c.pos];
      if (s->id[c.pos] != c.left_id || right < 0 || s->id[right] != c.right_id) continue;  // stale
      s->id[c.pos] = c.merged;
      s->id[right] = -1;
      s->next[c.pos] = s->next[right];
      if (s->next[right] >= 0) s->prev[s->next[right]] = c.pos;
      if (s->prev[c.pos] >= 0) candidate(s->prev[c.pos], &s->deferred);
      if (s->next[c.pos] >= 0) candidate(c.pos, &s->deferred);
    }
    for (const BpeScratch::Cand& c : s->deferred) {
      s->heap.push_back(c);
      std::push_heap(s->heap.begin(), s->heap.end(), cmp);
    }
  }
  for (int32_t i = 0; i >= 0; i = s->next[i]) out->push_back(s->id[i]);
}

Result<std::vector<int32_t>> Tokenizer::Impl::encode_bpe(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 16);
  BpeScratch scratch;
  // Per-call word cache: pieces repeat heavily in natural text. Keys view `text`, values index `pool`.
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int32_t> pool, word_ids;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = detail::next_pretoken(text, pos);
    const std::string_view piece = text.substr(pos, end - pos);
    pos = end;
    if (piece.size() == 1) {
      ids.push_back(byte_id[static_cast<unsigned char>(piece[0])]);
      continue;
    }
    auto it = cache.find(piece);
    if (it == cache.end()) {
      word_ids.clear();
      bpe_word(piece, &scratch, &word_ids);
      const auto off = static_cast<uint32_t>(pool.size());
      pool.insert(pool.end(), word_ids.begin(), word_ids.end());
      it = cache.emplace(piece, std::make_pair(off, static_cast<uint32_t>(word_ids.size()))).first;
    }
    ids.insert(ids.end(), pool.begin() + it->second.first,
               pool.begin() + it->second.first + it->second.second);
  }
  return ids;
}

// ---- Characters -----------------------------------------------------------------------------------

Result<Tokenizer> Tokenizer::chars(std::vector<std::string> symbols) {
  if (symbols.empty()) return invalid_argument("chars: the vocabulary is empty");
  if (symbols.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("chars: vocabulary of " + std::to_string(symbols.size()) + " is too large");
  }
  auto impl = std::make_unique<Impl>();
  impl->kind = TokenizerKind::kChars;
  std::fill(std::begin(impl->ascii_id), std::end(impl->ascii_id), -1);
  for (size_t id = 0; id < symbols.size(); ++id) {
    const std::string& s = symbols[id];
    utf8proc_int32_t cp = -1;
    const utf8proc_ssize_t len =
        s.empty() || !is_valid_utf8(s)
            ? -1
            : utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                               static_cast<utf8proc_ssize_t>(s.size()), &cp);
    if (len <= 0 || static_cast<size_t>(len) != s.size()) {
      return invalid_argument("chars: symbol " + std::to_string(id) + " " + quoted(s) +
                              " is not exactly one UTF-8 character");
    }
    int32_t previous = -1;
    if (cp < 128) {
      previous = impl->ascii_id[cp];
      impl->ascii_id[cp] = static_cast<int32_t>(id);
    } else {
      auto [it, inserted] = impl->char_id.emplace(cp, static_cast<int32_t>(id));
      if (!inserted) previous = it->second;
    }
    if (previous >= 0) {
      return invalid_argument("chars: symbol " + std::to_string(id) + " " + quoted(s) +
                              " duplicates symbol " + std::to_string(previous));
    }
  }
  impl->tokens = std::move(symbols);
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

Result<std::vector<int32_t>> Tokenizer::Impl::encode_chars(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  for (size_t pos = 0; pos < text.size();) {
    const auto b = static_cast<unsigned char>(text[pos]);
    int32_t id = -1;
    size_t len = 1;
    utf8proc_int32_t cp = b;
    if (b < 0x80) {
      id = ascii_id[b];
    } else {
      len = static_cast<size_t>(
          utf8proc_iterate(p + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp));
      auto it = char_id.find(cp);
      if (it != char_id.end()) id = it->second;
    }
    if (id < 0) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04" PRIX32, static_cast<uint32_t>(cp));
      return invalid_argument("encode: character " + quoted(text.substr(pos, len)) + " (" + buf +
                              ") at byte offset " + std::to_string(pos) + " is not in the vocabulary (a character-level model " +
                              "encodes only the " + std::to_string(tokens.size()) +
                              " characters of its training text; a byte-level BPE model encodes any UTF-8)");
    }
    ids.push_back(id);
    pos += len;
  }
  return ids;
}

}  // namespace ember
