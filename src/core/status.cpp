#include "ember/status.h"

#include <cstdio>
#include <cstdlib>

namespace ember {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kInvalidFile: return "invalid file";
    case StatusCode::kUnsupported: return "unsupported";
    case StatusCode::kContextFull: return "context full";
    case StatusCode::kInternal: return "internal error";
    case StatusCode::kAborted: return "aborted";
  }
  return "unknown";
}

void die_value_of_error(const Status& status) {
  std::fprintf(stderr, "ember: value() of an error Result (check ok() first): %s\n", status.message().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ember
