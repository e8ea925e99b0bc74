// ember/dataset.h - host side: labelled text datasets as JSON Lines.
//
//   auto rows = ember::read_jsonl_dataset("sms_spam.jsonl");   // one {"text": ..., "label": ...} per line
//
// Each non-empty line is a JSON object with a string "text" and a string "label"; "split" (string)
// and "balanced" (bool) are optional, other fields are ignored. Errors name the file and line.
#pragma once

#include <string>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"

namespace ember {

struct LabelledText {
  std::string text;
  std::string label;
  std::string split;  // "" when absent
  bool balanced = false;
  size_t line = 0;  // 1-based line in the file
};

EMBER_API Result<std::vector<LabelledText>> read_jsonl_dataset(const std::string& path);
// The same from memory (`name` is used in messages).
EMBER_API Result<std::vector<LabelledText>> parse_jsonl_dataset(const std::string& bytes, const std::string& name);

}  // namespace ember
