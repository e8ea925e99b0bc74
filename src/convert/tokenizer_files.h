// Tokenizer files parsed from memory (internal to libember_host): the bodies of load_gpt2_tokenizer and
// load_char_tokenizer (ember/convert.h) without the file reads, for fuzzing and tests. The names stand
// for the paths in messages.
#pragma once

#include <string>

#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

Result<Tokenizer> parse_gpt2_tokenizer(const std::string& vocab_json, const std::string& vocab_name,
                                       const std::string& merges, const std::string& merges_name);
Result<Tokenizer> parse_char_tokenizer(const std::string& json_text, const std::string& name);

}  // namespace ember
