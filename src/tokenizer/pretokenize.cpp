// pretokenize.cpp - GPT-2's pre-tokenizer regex as a hand-written matcher (no regex engine: it has
// to be small, fast and identical to Python's `regex` module on every input).
#include "tokenizer/pretokenize.h"

#include <array>
#include <cstdint>

#include <utf8proc.h>

namespace ember::detail {
namespace {

enum class Cls : uint8_t { kLetter, kNumber, kSpace, kOther };

// Unicode White_Space (PropList.txt), which Python's `regex` module uses for \s. Note it excludes
// U+001C..U+001F, which Python's `re` would include.
bool is_white_space(int32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

Cls classify_slow(int32_t c) {
  if (is_white_space(c)) return Cls::kSpace;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return Cls::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return Cls::kNumber;
    default:
      return Cls::kOther;
  }
}

// ASCII dominates real text; a constant table avoids utf8proc's lookup (and static-init order).
constexpr std::array<Cls, 128> kAscii = [] {
  std::array<Cls, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) t[c] = Cls::kLetter;
    else if (c >= '0' && c <= '9') t[c] = Cls::kNumber;
    else if (c == ' ' || (c >= 0x09 && c <= 0x0D)) t[c] = Cls::kSpace;
    else t[c] = Cls::kOther;
  }
  return t;
}();

inline Cls classify(int32_t c) { return c < 128 ? kAscii[c] : classify_slow(c); }

struct CodePoint {
  int32_t c;
  size_t len;
};

inline CodePoint decode(std::string_view t, size_t pos) {
  const auto b = static_cast<unsigned char>(t[pos]);
  if (b < 0x80) return {b, 1};
  utf8proc_int32_t c = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(t.data()) + pos,
                                              static_cast<utf8proc_ssize_t>(t.size() - pos), &c);
  // Input is validated by the caller; still never stall on a bad byte.
  if (n <= 0) return {0xFFFD, 1};
  return {c, static_cast<size_t>(n)};
}

}  // namespace

size_t next_pretoken(std::string_view t, size_t pos) {
  const size_t n = t.size();
  // 's|'t|'re|'ve|'m|'ll|'d (lower case only, as in GPT-2).
  if (t[pos] == '\'' && pos + 1 < n) {
    const char a = t[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return pos + 2;
    if (pos + 2 < n) {
      const char b = t[pos + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return pos + 3;
    }
  }
  const CodePoint first = decode(t, pos);
  Cls cls = classify(first.c);
  size_t end = pos + first.len;
  // ` ?X+`: one leading space joins a following run of letters, digits or other symbols.
  if (first.c == ' ' && end < n) {
    const CodePoint next = decode(t, end);
    const Cls next_cls = classify(next.c);
    if (next_cls != Cls::kSpace) {
      cls = next_cls;
      end += next.len;
    }
  }
  if (cls != Cls::kSpace) {
    while (end < n) {
      const CodePoint c = decode(t, end);
      if (classify(c.c) != cls) break;
      end += c.len;
    }
    return end;
  }
  // Whitespace run. `\s+(?!\S)` backtracks by one character when the run is followed by
  // non-space, leaving that last character to start the next piece (" word"); a single character
  // followed by non-space, or a run that ends the text, is taken whole by `\s+`.
  size_t last = pos;
  while (end < n) {
    const CodePoint c = decode(t, end);
    if (classify(c.c) != Cls::kSpace) break;
    last = end;
    end += c.len;
  }
  return (end == n || last == pos) ? end : last;
}

}  // namespace ember::detail
