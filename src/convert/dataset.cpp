#include "ember/dataset.h"
#include "ember/io.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace ember {

Result<std::vector<LabelledText>> parse_jsonl_dataset(const std::string& bytes, const std::string& name) {
  std::vector<LabelledText> rows;
  size_t line_no = 0, start = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    const std::string line = bytes.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = name + " line " + std::to_string(line_no);
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid_file(at + ": not valid JSON");
    if (!j.is_object()) return invalid_file(at + ": expected a JSON object");
    auto text = j.find("text");
    auto label = j.find("label");
    if (text == j.end() || !text->is_string()) return invalid_file(at + ": \"text\" is missing or not a string");
    if (label == j.end() || !label->is_string()) return invalid_file(at + ": \"label\" is missing or not a string");
    LabelledText r;
    r.text = text->get<std::string>();
    r.label = label->get<std::string>();
    r.line = line_no;
    auto split = j.find("split");
    if (split != j.end()) {
      if (!split->is_string()) return invalid_file(at + ": \"split\" is not a string");
      r.split = split->get<std::string>();
    }
    auto balanced = j.find("balanced");
    if (balanced != j.end()) {
      if (!balanced->is_boolean()) return invalid_file(at + ": \"balanced\" is not true or false");
      r.balanced = balanced->get<bool>();
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

Result<std::vector<LabelledText>> read_jsonl_dataset(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_jsonl_dataset(text, path);
}

}  // namespace ember
