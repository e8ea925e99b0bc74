// tokenizer_files.cpp - loads GPT-2 BPE (vocab.json + merges.txt, or encoder.json + vocab.bpe) and
// character vocabularies from their JSON / text files into a Tokenizer.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "convert/json_excerpt.h"
#include "convert/tokenizer_files.h"
#include "ember/convert.h"
#include "ember/io.h"

namespace ember {
namespace {

using json = nlohmann::json;

Status read_text(const std::string& path, std::string* out) {
  EMBER_ASSIGN_OR_RETURN(*out, read_file(path));
  return Status::Ok();
}

Status parse_json(const std::string& text, const std::string& path, json* out) {
  try {
    *out = json::parse(text);
  } catch (const json::exception& e) {
    return invalid_file(path + ": malformed JSON: " + e.what());
  }
  return Status::Ok();
}

// GPT-2 spells each byte as a printable code point (encoder.py's bytes_to_unicode): the printable
// Latin-1 bytes stand for themselves, the other 68 bytes map to U+0100.. in byte order.
struct ByteSpelling {
  int16_t byte_of[324];  // code point -> byte, -1 if not a spelling
  ByteSpelling() {
    std::fill(std::begin(byte_of), std::end(byte_of), int16_t{-1});
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_of[printable ? b : next++] = static_cast<int16_t>(b);
    }
  }
};

// Converts a spelled token (UTF-8 of the spelling code points, all below U+0800) to raw bytes; false
// on a code point that is not a byte spelling.
bool unspell(const std::string& spelled, std::string* bytes) {
  static const ByteSpelling table;
  bytes->clear();
  const auto* p = reinterpret_cast<const unsigned char*>(spelled.data());
  const size_t n = spelled.size();
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    if (p[i] < 0x80) {
      cp = p[i];
      i += 1;
    } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80) {
      cp = ((p[i] & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      i += 2;
    } else {
      return false;
    }
    if (cp >= 324 || table.byte_of[cp] < 0) return false;
    bytes->push_back(static_cast<char>(table.byte_of[cp]));
  }
  return true;
}

std::string shown(const std::string& s) { return "'" + s + "'"; }

Result<Tokenizer> gpt2_impl(const std::string& vocab_text, const std::string& vocab_path, const std::string& text,
                            const std::string& merges_path) {
  json vocab;
  EMBER_RETURN_IF_ERROR(parse_json(vocab_text, vocab_path, &vocab));
  if (!vocab.is_object() || vocab.empty()) {
    return invalid_file(vocab_path + ": expected a non-empty JSON object mapping tokens to ids");
  }
  const size_t n = vocab.size();
  std::vector<std::string> tokens(n);
  std::vector<bool> have(n, false);
  std::unordered_map<std::string, int32_t> id_of;  // spelled form -> id
  id_of.reserve(n);
  int32_t eot = -1;
  std::string bytes;
  for (const auto& [spelled, value] : vocab.items()) {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
        value.get<int64_t>() >= static_cast<int64_t>(n)) {
      return invalid_file(vocab_path + " entry " + shown(spelled) + ": id " + json_excerpt(value) +
                          " is not an integer in [0, " + std::to_string(n) + ")");
    }
    const auto id = value.get<int32_t>();
    if (have[id]) {
      return invalid_file(vocab_path + " entry " + shown(spelled) + ": id " + std::to_string(id) +
                          " is used twice");
    }
    if (spelled == "<|endoftext|>") eot = id;
    if (!unspell(spelled, &bytes)) {
      return invalid_file(vocab_path + " entry " + shown(spelled) +
                          ": not in GPT-2's byte-to-unicode spelling");
    }
    have[id] = true;
    tokens[id] = bytes;
    id_of.emplace(spelled, id);
  }

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::istringstream lines(text);
  std::string line;
  for (size_t line_no = 1; std::getline(lines, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const std::string where = merges_path + " line " + std::to_string(line_no);
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string::npos) {
      return invalid_file(where + ": expected two tokens separated by one space, got " + shown(line));
    }
    const std::string left = line.substr(0, sp), right = line.substr(sp + 1);
    auto l = id_of.find(left), r = id_of.find(right);
    if (l == id_of.end() || r == id_of.end()) {
      return invalid_file(where + ": token " + shown(l == id_of.end() ? left : right) +
                          " not in vocabulary");
    }
    if (!id_of.count(left + right)) {
      return invalid_file(where + ": merged token " + shown(left + right) + " not in vocabulary");
    }
    merges.emplace_back(l->second, r->second);
  }
  Result<Tokenizer> tok = Tokenizer::gpt2_bpe(std::move(tokens), std::move(merges), eot);
  if (!tok.ok()) return tok.status().with_context(vocab_path + " + " + merges_path);
  return tok;
}

// Accepts ["a", "b", ...], {"a": 0, "b": 1, ...}, or nanoGPT's meta ({"stoi": {...}} or
// {"itos": {"0": "a", ...} or [...]}).
Result<Tokenizer> chars_impl(const std::string& text, const std::string& path) {
  const std::string& name = path;
  json root;
  EMBER_RETURN_IF_ERROR(parse_json(text, path, &root));
  std::vector<std::string> symbols;
  auto bad = [&](const std::string& what) { return invalid_file(name + " " + what); };

  // Pointers into `root`, never copies: copying a json value recurses once per nesting level, and a
  // hostile file can nest 100,000 deep.
  const json* jp = &root;
  json inverted;
  if (root.is_object() && root.contains("stoi")) jp = &root["stoi"];
  else if (root.is_object() && root.contains("itos")) {
    const json& itos = root["itos"];
    if (itos.is_array()) {
      jp = &itos;
    } else if (itos.is_object()) {
      inverted = json::object();
      for (const auto& [key, value] : itos.items()) {
        if (!value.is_string()) return bad("itos entry " + shown(key) + ": expected a string");
        char* end = nullptr;
        const long id = std::strtol(key.c_str(), &end, 10);
        if (key.empty() || *end != '\0') return bad("itos key " + shown(key) + ": expected an integer");
        if (inverted.contains(value.get<std::string>())) {
          return bad("itos entry " + shown(key) + ": character repeats");
        }
        inverted[value.get<std::string>()] = id;
      }
      jp = &inverted;
    } else {
      return bad("\"itos\": expected an object or array");
    }
  }
  const json& j = *jp;

  if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_string()) return bad("entry " + std::to_string(i) + ": expected a string");
      symbols.push_back(j[i].get<std::string>());
    }
  } else if (j.is_object()) {
    const size_t n = j.size();
    symbols.resize(n);
    std::vector<bool> have(n, false);
    for (const auto& [ch, value] : j.items()) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
          value.get<int64_t>() >= static_cast<int64_t>(n)) {
        return bad("entry " + shown(ch) + ": id " + json_excerpt(value) + " is not an integer in [0, " +
                   std::to_string(n) + ")");
      }
      const auto id = value.get<size_t>();
      if (have[id]) return bad("entry " + shown(ch) + ": id " + std::to_string(id) + " is used twice");
      have[id] = true;
      symbols[id] = ch;
    }
  } else {
    return bad("is neither a JSON array of characters nor an object mapping characters to ids");
  }
  Result<Tokenizer> tok = Tokenizer::chars(std::move(symbols));
  if (!tok.ok()) return tok.status().with_context(path);
  return tok;
}

}  // namespace

// The public functions never throw: nlohmann and allocation failures are turned into a Status here.
Result<Tokenizer> parse_gpt2_tokenizer(const std::string& vocab_json, const std::string& vocab_name,
                                       const std::string& merges, const std::string& merges_name) {
  try {
    return gpt2_impl(vocab_json, vocab_name, merges, merges_name);
  } catch (const std::exception& e) {
    return invalid_file(vocab_name + " / " + merges_name + ": " + e.what());
  }
}

Result<Tokenizer> parse_char_tokenizer(const std::string& json_text, const std::string& name) {
  try {
    return chars_impl(json_text, name);
  } catch (const std::exception& e) {
    return invalid_file(name + ": " + e.what());
  }
}

Result<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json_path, const std::string& merges_path) {
  std::string vocab, merges;
  EMBER_RETURN_IF_ERROR(read_text(vocab_json_path, &vocab));
  EMBER_RETURN_IF_ERROR(read_text(merges_path, &merges));
  return parse_gpt2_tokenizer(vocab, vocab_json_path, merges, merges_path);
}

Result<Tokenizer> load_char_tokenizer(const std::string& path) {
  std::string text;
  EMBER_RETURN_IF_ERROR(read_text(path, &text));
  return parse_char_tokenizer(text, path);
}

}  // namespace ember
