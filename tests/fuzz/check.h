// The invariant check of ember's fuzz targets: a violated invariant prints which (prefixed with the
// target's name) and aborts, which libFuzzer reports as a crash and saves the input for.
#pragma once

#include <cerrno>  // program_invocation_short_name (glibc, _GNU_SOURCE: on by default in g++ and clang++)
#include <cstdio>
#include <cstdlib>

namespace {

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "%s: invariant failed: %s\n", program_invocation_short_name, what);
    std::abort();
  }
}

}  // namespace
