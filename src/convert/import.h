// config.json parsed from memory (internal to libember_host): what import_model reads from a
// checkpoint's config.json (naming detection, typed fields, ModelConfig::validate), for fuzzing and
// tests. `name` stands for the path in messages.
#pragma once

#include <string>

#include "ember/config.h"
#include "ember/status.h"

namespace ember {

Result<ModelConfig> parse_checkpoint_config(const std::string& json_text, const std::string& name);

}  // namespace ember
