// Shared command-line plumbing for ember's tools: option parsing with --help, error exits, small
// file helpers and JSON string escaping. Tools only; the library never prints.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ember/io.h"
#include "ember/model.h"
#include "ember/session.h"
#include "ember/tokenizer.h"
#include "ember/status.h"

namespace ember_cli {

class Args {
 public:
  // `usage` is the synopsis line(s); `about` a paragraph printed under it by --help.
  Args(std::string prog, std::string usage, std::string about);
  // Declares an option. `metavar` empty: a flag without a value. `short_name` may be empty.
  void option(const std::string& long_name, const std::string& short_name, const std::string& metavar,
              const std::string& help, const std::string& default_value = "");
  // Parses argv. On --help prints the help to stdout and exits 0; on a bad command line prints
  // "<prog>: <reason>" and a hint to stderr and exits 2.
  void parse(int argc, char** argv);

  bool has(const std::string& long_name) const;  // given on the command line
  std::string str(const std::string& long_name) const;  // given value or default
  std::vector<std::string> all(const std::string& long_name) const;  // every occurrence
  int64_t integer(const std::string& long_name, int64_t min, int64_t max) const;  // exits 2 when invalid
  double number(const std::string& long_name, double min, double max) const;      // exits 2 when invalid
  const std::vector<std::string>& positional() const { return positional_; }
  const std::string& prog() const { return prog_; }
  [[noreturn]] void usage_error(const std::string& reason) const;
  std::string help() const;

 private:
  struct Opt {
    std::string long_name, short_name, metavar, help, def;
  };
  const Opt* find(const std::string& name) const;
  std::string prog_, usage_, about_;
  std::vector<Opt> opts_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// `s` with control bytes (NUL, ESC, newlines...) and bytes that are not valid UTF-8 shown as \xNN: what
// a message quoting a user's input may print on a terminal.
std::string printable(const std::string& s);
// Prints "<prog>: error: <message>" (printable) to stderr and exits 1.
[[noreturn]] void fail(const std::string& prog, const std::string& message);
// Exits via fail() if `s` is not ok.
void check(const std::string& prog, const ember::Status& s);
template <typename T>
T check(const std::string& prog, ember::Result<T> r) {
  if (!r.ok()) fail(prog, r.status().message());
  return std::move(r).value();
}

// Token ids from a file: whitespace-separated decimal ids, or little-endian uint16 when the name ends
// in ".bin" (nanoGPT's train.bin / val.bin).
// Before any work: exits via fail() when an output would destroy an input or another output (the same
// file, through links too), when it is a directory, or when its directory does not exist. Every tool
// that writes calls it with all it reads.
void check_outputs(const std::string& prog, const std::vector<std::string>& outputs,
                   const std::vector<std::string>& inputs);
ember::Result<std::vector<int32_t>> read_token_file(const std::string& path);
// Parses "1 2 3" or "1,2,3".
ember::Result<std::vector<int32_t>> parse_ids(const std::string& text);
std::string json_escape(const std::string& s);  // with surrounding quotes; bytes >= 0x80 kept (valid UTF-8 assumed)
uint32_t default_threads();                    // the CPUs this process may use, at most 4
// --threads of the runtime tools: "auto" is 1 for models under 10M parameters (their per-token ops are
// too small to split: a second thread only adds waiting, a lot of it on a busy machine), else
// default_threads(); otherwise the number given (1-1024; a usage error if not).
uint32_t threads_for(const Args& args, const ember::Model& model);
double now_seconds();                          // monotonic
std::string human_bytes(uint64_t n);

}  // namespace ember_cli
