// Fuzz target "token_file": token ids as text (parse_token_ids, what ember-perplexity --tokens,
// ember-quantize --calib FILE.ids and ember-generate --ids read). An accepted input round-trips: the ids
// printed with single spaces parse to the same ids; an error names the input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "ember/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  auto ids = ember::parse_token_ids(in, "fuzz.ids");
  if (!ids.ok()) {
    check(ids.status().message().rfind("fuzz.ids: ", 0) == 0, "an error that does not name the input");
    return 0;
  }
  std::string text;
  for (int32_t id : *ids) {
    check(id >= 0, "a negative id");
    text += std::to_string(id) + " ";
  }
  auto again = ember::parse_token_ids(text, "again");
  check(again.ok() && *again == *ids, "the printed ids do not parse back to the same ids");
  return 0;
}
