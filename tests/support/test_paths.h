// Where tests find their data. tests/data is always there (a missing file there is a failure);
// ../shared/data may be absent: tests that need it skip, or fail under CI (skip.h's need_file).
// The shared data: $EMBER_SHARED_DATA when set (so `EMBER_SHARED_DATA=/nowhere meson test` shows the
// skips), else meson's default for the build (EMBER_SHARED_DATA_DEFAULT: the source root's
// ../shared/data), else ../shared/data from the current directory.
#pragma once

#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace ember_test {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string(fallback);
}
inline std::string data_dir() { return env_or("EMBER_TEST_DATA", "tests/data"); }
inline std::string shared_data_dir() {
  return env_or("EMBER_SHARED_DATA", env_or("EMBER_SHARED_DATA_DEFAULT", "../shared/data").c_str());
}
inline std::string build_dir() { return env_or("EMBER_BUILD_DIR", "."); }
inline bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}
inline std::string temp_dir() { return env_or("TMPDIR", "/tmp"); }

}  // namespace ember_test
