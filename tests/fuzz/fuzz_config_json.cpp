// Fuzz target "config_json": a checkpoint's config.json (Hugging Face gpt2 / openai-gpt or nanoGPT):
// naming detection, typed fields, defaults, and ModelConfig::validate.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "check.h"
#include "convert/import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  auto c = ember::parse_checkpoint_config(in, "config.json");
  if (!c.ok()) {
    check(c.status().message().rfind("config.json", 0) == 0, "an error that does not name the file");
    return 0;
  }
  check(c->validate().ok(), "an accepted config does not validate");
  (void)ember::required_tensors(*c);
  return 0;
}
