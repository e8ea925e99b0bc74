// utf8.cpp - UTF-8 validation and Utf8Stream, the joiner used when printing tokens one at a time.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ember/tokenizer.h"

namespace ember {
namespace {

enum class Seq { kComplete, kIncomplete, kInvalid };

// Classifies the sequence starting at p[0] (n >= 1 bytes available) by Unicode's table of
// well-formed sequences (Table 3-7), which also rules out overlongs, surrogates and > U+10FFFF.
// *len is the sequence length (kComplete), the bytes present (kIncomplete: a valid prefix cut off by
// the end of the buffer), or the "maximal subpart" to replace by one U+FFFD (kInvalid), the
// substitution Python's errors="replace" and WHATWG use.
Seq classify(const unsigned char* p, size_t n, size_t* len) {
  const unsigned char b = p[0];
  if (b < 0x80) {
    *len = 1;
    return Seq::kComplete;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;       // overlong
    else if (b == 0xED) hi = 0x9F;  // surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;       // overlong
    else if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    *len = 1;
    return Seq::kInvalid;
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= n) {
      *len = i;
      return Seq::kIncomplete;
    }
    if (p[i] < lo || p[i] > hi) {
      *len = i;
      return Seq::kInvalid;
    }
    lo = 0x80;
    hi = 0xBF;
  }
  *len = need + 1;
  return Seq::kComplete;
}

size_t ascii_prefix(const unsigned char* p, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull) break;
  }
  while (i < n && p[i] < 0x80) ++i;
  return i;
}

constexpr char kReplacement[] = "\xEF\xBF\xBD";

// Appends the repaired form of `s` to `out`. With !at_end, a valid but cut-off sequence at the end is
// not emitted; returns its length so the caller can keep it for the next push.
size_t repair(std::string_view s, bool at_end, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const size_t a = ascii_prefix(p + i, n - i);
    out->append(s.data() + i, a);
    i += a;
    if (i >= n) break;
    size_t len;
    switch (classify(p + i, n - i, &len)) {
      case Seq::kComplete:
        out->append(s.data() + i, len);
        break;
      case Seq::kInvalid:
        out->append(kReplacement);
        break;
      case Seq::kIncomplete:
        if (!at_end) return n - i;
        out->append(kReplacement);
        break;
    }
    i += len;
  }
  return 0;
}

}  // namespace

bool is_valid_utf8(std::string_view s, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    i += ascii_prefix(p + i, n - i);
    if (i >= n) break;
    size_t len;
    if (classify(p + i, n - i, &len) != Seq::kComplete) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes.data(), bytes.size());
  std::string out;
  const size_t keep = repair(pending_, /*at_end=*/false, &out);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  (void)repair(pending_, /*at_end=*/true, &out);
  pending_.clear();
  return out;
}

void Utf8Stream::push(std::string_view bytes, std::string* out) {
  pending_.append(bytes.data(), bytes.size());
  const size_t keep = repair(pending_, /*at_end=*/false, out);
  pending_.erase(0, pending_.size() - keep);
}

void Utf8Stream::flush(std::string* out) {
  (void)repair(pending_, /*at_end=*/true, out);
  pending_.clear();
}

void Utf8Stream::reserve(size_t pending_bytes) { pending_.reserve(pending_bytes + 4); }

}  // namespace ember
