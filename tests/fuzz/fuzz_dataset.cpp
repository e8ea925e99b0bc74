// Fuzz target "dataset": the JSON Lines dataset reader (parse_jsonl_dataset, what read_jsonl_dataset
// runs on a file's bytes).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "ember/dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  auto rows = ember::parse_jsonl_dataset(in, "fuzz.jsonl");
  if (!rows.ok()) {
    check(rows.status().message().rfind("fuzz.jsonl line ", 0) == 0, "an error that does not name the line");
    return 0;
  }
  size_t lines = 1;
  for (char ch : in) lines += ch == '\n';
  size_t prev = 0;
  for (const ember::LabelledText& r : *rows) {
    check(r.line > prev && r.line <= lines, "row line numbers out of order or past the end");
    prev = r.line;
  }
  return 0;
}
