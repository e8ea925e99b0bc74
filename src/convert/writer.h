// Internal: the writer without the spec validation, so tests can build deliberately broken files
// (missing tensors, wrong shapes) and check that the loader rejects them.
#pragma once

#include <string>

#include "ember/convert.h"

namespace ember {

Status write_model_file_unchecked(const ModelSpec& spec, const std::string& path);

}  // namespace ember
