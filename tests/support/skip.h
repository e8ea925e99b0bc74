// Honest skips. doctest has no run-time skip, so a test case that cannot run here calls one of these and
// returns; tests/support/doctest_main.cpp prints each skip as it happens and a count at the end, and
// exits 77 (meson's "skipped") when every test case that ran was skipped.
//
//   if (!ember_test::need_file(path)) return;    // a file outside the repository (../shared/data)
//   if (!ember_test::need_tool(tool)) return;    // a built tool (ToolRunner)
//   ember_test::skip("RLIMIT_AS does not apply under qemu-user");  return;   // a platform limit
//
// need_file / need_tool: under CI (CI=true in the environment) a missing file or tool is a failure that
// names it, since CI runs with ../shared/data present and every tool built; elsewhere it is a skip.
// skip(): never a failure; for what cannot be tested on this platform. Each skip prints one line
//   SKIPPED: <test case>: <reason>
// on stdout, which tools/test.sh counts.
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "test_paths.h"

namespace ember_test {

struct SkipState {
  std::string current;           // the running test case (doctest_main.cpp's listener sets it)
  std::set<std::string> skipped;  // test cases that skipped (some or all of their checks)
  size_t n_skips = 0, n_run = 0;
};
inline SkipState& skip_state() {
  static SkipState s;
  return s;
}

// CI=true (or any value but "", "0", "false"): skips of missing data or tools are failures.
inline bool ci() {
  const char* v = std::getenv("CI");
  return v && *v && std::string(v) != "0" && std::string(v) != "false";
}

inline void skip(const std::string& reason) {
  SkipState& s = skip_state();
  ++s.n_skips;
  s.skipped.insert(s.current);
  std::printf("SKIPPED: %s: %s\n", s.current.c_str(), reason.c_str());
  std::fflush(stdout);
}

// `present`, or else a skip for `reason` (under CI a failure).
inline bool need(bool present, const std::string& reason) {
  if (present) return true;
  if (ci()) FAIL_CHECK("CI=true: " << reason << " (CI runs with ../shared/data present and every tool built)");
  else skip(reason);
  return false;
}

// True when `path` exists; otherwise a skip naming it (`what` says what it is), or under CI a failure.
inline bool need_file(const std::string& path, const std::string& what = "") {
  return need(exists(path), path + " is missing" + (what.empty() ? "" : " (" + what + ")"));
}

}  // namespace ember_test
