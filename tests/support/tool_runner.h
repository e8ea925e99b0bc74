// Runs a built tool from a test: in a temporary directory of its own, through the cross build's exe
// wrapper (EMBER_EXE_WRAPPER, qemu) when there is one, capturing stdout and stderr.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "skip.h"
#include "test_paths.h"

namespace ember_test {

// A built program (not, say, the source directory tools/ when EMBER_BUILD_DIR is unset).
inline bool is_program(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

struct ToolRunner {
  std::string exe, dir;
  ToolRunner(const std::string& tool, const std::string& tmp_prefix) : exe(build_dir() + "/tools/" + tool) {
    std::string tmpl = temp_dir() + "/" + tmp_prefix + "_XXXXXX";
    char* p = mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    dir = p;
  }
  ~ToolRunner() { std::system(("rm -rf '" + dir + "'").c_str()); }
  ToolRunner(const ToolRunner&) = delete;
  ToolRunner& operator=(const ToolRunner&) = delete;
  bool present() const { return is_program(exe); }
  // Exit code of `TOOL ARGS` (128 + signal when killed); output in dir/out and dir/err.
  int run(const std::string& args) const {
    const std::string wrapper = env_or("EMBER_EXE_WRAPPER", "");
    const int rc =
        std::system(((wrapper.empty() ? "" : wrapper + " ") + exe + " " + args + " >" + dir + "/out 2>" + dir + "/err").c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  }
  std::string err() const {
    std::ifstream f(dir + "/err");
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
};

// True when the tool was built; otherwise a skip naming it, or under CI a failure (skip.h).
inline bool need_tool(const ToolRunner& t) { return need(t.present(), t.exe + " is not built (a tool)"); }
inline bool need_tool(const std::string& name) {
  const std::string exe = build_dir() + "/tools/" + name;
  return need(is_program(exe), exe + " is not built (a tool)");
}

}  // namespace ember_test
