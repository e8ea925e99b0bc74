// pretokenize.h - GPT-2's pre-tokenizer: splits text into the pieces that BPE merges within.
#pragma once

#include <cstddef>
#include <string_view>

namespace ember::detail {

// End (byte offset) of the piece that starts at `pos` (< text.size()) under GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with \s = Unicode White_Space and L/N from utf8proc's categories. `text` must be valid UTF-8.
size_t next_pretoken(std::string_view text, size_t pos);

}  // namespace ember::detail
