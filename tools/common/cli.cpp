#include "cli.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "ember/version.h"

namespace ember_cli {

Args::Args(std::string prog, std::string usage, std::string about)
    : prog_(std::move(prog)), usage_(std::move(usage)), about_(std::move(about)) {
  option("help", "h", "", "show this help and exit");
  option("version", "", "", "print ember's version and the kernel table this CPU runs, and exit");
}

void Args::option(const std::string& long_name, const std::string& short_name, const std::string& metavar,
                  const std::string& help, const std::string& default_value) {
  opts_.push_back({long_name, short_name, metavar, help, default_value});
}

const Args::Opt* Args::find(const std::string& name) const {
  for (const Opt& o : opts_)
    if (o.long_name == name || (!o.short_name.empty() && o.short_name == name)) return &o;
  return nullptr;
}

std::string Args::help() const {
  std::string h = "usage: " + usage_ + "\n\n" + about_ + "\n\noptions:\n";
  for (const Opt& o : opts_) {
    std::string left = "  " + (o.short_name.empty() ? "    " : "-" + o.short_name + ", ") + "--" + o.long_name;
    if (!o.metavar.empty()) left += " " + o.metavar;
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    h += left + o.help;
    if (!o.def.empty()) h += " (default: " + o.def + ")";
    h += "\n";
  }
  return h;
}

void Args::usage_error(const std::string& reason) const {
  std::fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", prog_.c_str(), printable(reason).c_str(),
               prog_.c_str());
  std::exit(2);
}

void Args::parse(int argc, char** argv) {
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' || (a[0] == '-' && std::isdigit(static_cast<unsigned char>(a[1])))) {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name, value;
    bool has_value = false;
    if (a.rfind("--", 0) == 0) {
      name = a.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
    } else {
      name = a.substr(1);
    }
    const Opt* o = find(name);
    if (!o) usage_error("unknown option '" + a + "'");
    if (o->long_name == "help") {
      std::fputs(help().c_str(), stdout);
      std::exit(0);
    }
    if (o->long_name == "version") {
      std::printf("%s (ember %s), kernels: %s\n", prog_.c_str(), ember::version(), ember::kernel_table_name());
      std::exit(0);
    }
    if (o->metavar.empty()) {
      if (has_value) usage_error("option '--" + o->long_name + "' takes no value");
      values_[o->long_name].push_back("1");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) usage_error("option '" + a + "' needs a value (" + o->metavar + ")");
      value = argv[++i];
    }
    values_[o->long_name].push_back(value);
  }
}

bool Args::has(const std::string& n) const { return values_.count(n) != 0; }

std::string Args::str(const std::string& n) const {
  auto it = values_.find(n);
  if (it != values_.end()) return it->second.back();
  const Opt* o = find(n);
  return o ? o->def : "";
}

std::vector<std::string> Args::all(const std::string& n) const {
  auto it = values_.find(n);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

int64_t Args::integer(const std::string& n, int64_t min, int64_t max) const {
  const std::string v = str(n);
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE)
    usage_error("--" + n + " must be an integer (got '" + v + "')");
  if (x < min || x > max)
    usage_error("--" + n + " must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " + v + ")");
  return x;
}

double Args::number(const std::string& n, double min, double max) const {
  const std::string v = str(n);
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || std::isnan(x)) usage_error("--" + n + " must be a number (got '" + v + "')");
  if (x < min || x > max) {
    std::ostringstream os;
    os << "--" << n << " must be between " << min << " and " << max << " (got " << v << ")";
    usage_error(os.str());
  }
  return x;
}

std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len > 1 && i + len <= s.size() && ember::is_valid_utf8(std::string_view(s).substr(i, len))) {
      out.append(s, i, len);
      i += len;
      continue;
    }
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    }
    ++i;
  }
  return out;
}

void fail(const std::string& prog, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s: error: %s\n", prog.c_str(), printable(message).c_str());
  std::exit(1);
}

void check(const std::string& prog, const ember::Status& s) {
  if (!s.ok()) fail(prog, s.message());
}

ember::Result<std::vector<int32_t>> parse_ids(const std::string& text) { return ember::parse_token_ids(text, "token ids"); }

void check_outputs(const std::string& prog, const std::vector<std::string>& outputs,
                   const std::vector<std::string>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& out = outputs[i];
    struct stat st;
    if (out.empty()) fail(prog, "an output path is empty");
    if (stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) fail(prog, out + ": is a directory; give a file name to write");
    const size_t slash = out.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : out.substr(0, slash);
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(prog, out + ": the directory " + dir + " does not exist");
    for (const std::string& in : inputs)
      if (ember::same_file(out, in))
        fail(prog, out + ": is also an input (" + in + "); writing it would destroy that input, choose another output");
    for (size_t j = 0; j < i; ++j)
      if (ember::same_file(out, outputs[j])) fail(prog, out + " and " + outputs[j] + " are one file; give two different outputs");
  }
}

ember::Result<std::vector<int32_t>> read_token_file(const std::string& path) { return ember::read_token_file(path); }

std::string json_escape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

uint32_t default_threads() {
  const size_t n = ember::available_cpus();
  return n > 4 ? 4 : static_cast<uint32_t>(n);
}

uint32_t threads_for(const Args& args, const ember::Model& model) {
  if (args.str("threads") != "auto") return static_cast<uint32_t>(args.integer("threads", 1, 1024));
  uint64_t params = 0;
  for (const auto& t : model.tensors()) {
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    params += n;
  }
  return params < 10000000 ? 1 : default_threads();
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else if (n >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace ember_cli
