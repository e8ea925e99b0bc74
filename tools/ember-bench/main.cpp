// ember-bench: prefill and decode speed, load time and peak memory of a model (llama-bench style).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../common/cli.h"
#include "ember/model.h"
#include "ember/session.h"

using namespace ember_cli;

namespace {

std::vector<int64_t> parse_list(const Args& args, const std::string& name, int64_t min, int64_t max) {
  std::vector<int64_t> r;
  std::stringstream ss(args.str(name));
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < min || v > max)
      args.usage_error("--" + name + " wants a comma-separated list of integers in [" + std::to_string(min) + ", " +
                       std::to_string(max) + "] (got '" + args.str(name) + "')");
    r.push_back(v);
  }
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mib() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

struct Row {
  std::string test;  // "pp512" or "tg128"
  uint32_t threads;
  double tok_s;
  std::vector<double> runs;
};

}  // namespace

int main(int argc, char** argv) {
  Args args("ember-bench", "ember-bench -m MODEL [-p 64,512] [-n 128] [-t 1,2] [-r 5] [--json] [--profile]",
            "Measures a model like llama-bench: prefill speed for each prompt length (ppN: N random tokens\n"
            "from an empty context), decode speed (tgN: N tokens one at a time from an empty context), as\n"
            "the median of R repeats after one warm-up, for each thread count; plus load time and peak RSS.\n"
            "Prompt lengths above the model's n_ctx are skipped. --profile adds time per op.");
  args.option("model", "m", "MODEL", "model file (.ember)");
  args.option("prompt", "p", "N,...", "prompt lengths for the prefill test", "64,512");
  args.option("n-gen", "n", "N", "tokens for the decode test (0: skip)", "128");
  args.option("threads", "t", "N,...", "thread counts", "1,2");
  args.option("repeats", "r", "R", "repeats per test (median reported)", "5");
  args.option("batch", "b", "N", "prefill micro-batch size", "64");
  args.option("json", "", "", "print results as JSON");
  args.option("profile", "", "", "print time per op for each test");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (!args.has("model")) args.usage_error("no model given (-m MODEL)");
  const std::vector<int64_t> prompts = parse_list(args, "prompt", 1, 1 << 20);
  const std::vector<int64_t> threads = parse_list(args, "threads", 1, 1024);
  const int64_t n_gen = args.integer("n-gen", 0, 1 << 20);
  const int64_t repeats = args.integer("repeats", 1, 1000);
  const uint32_t n_batch = static_cast<uint32_t>(args.integer("batch", 1, 1 << 16));
  const bool profile = args.has("profile");

  const double t0 = now_seconds();
  auto model = check(P, ember::Model::load(args.str("model")));
  const double load_s = now_seconds() - t0;
  const ember::ModelConfig& c = model->config();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab) - 1);
  std::vector<int32_t> tokens(c.n_ctx);
  for (int32_t& t : tokens) t = tok(rng);

  std::vector<Row> rows;
  std::string profiles;
  auto add_profile = [&](const std::string& test, uint32_t th, const ember::Session& s) {
    if (!profile) return;
    double total = 0;
    for (const auto& op : s.profile()) total += op.seconds;
    char buf[160];
    std::snprintf(buf, sizeof buf, "\nprofile %s, %u threads (all repeats):\n%-12s %10s %7s %10s\n", test.c_str(), th, "op", "ms", "%", "calls");
    profiles += buf;
    for (const auto& op : s.profile()) {
      std::snprintf(buf, sizeof buf, "%-12s %10.2f %6.1f%% %10llu\n", op.op, op.seconds * 1e3, total > 0 ? 100 * op.seconds / total : 0.0,
                    static_cast<unsigned long long>(op.calls));
      profiles += buf;
    }
  };
  for (int64_t th : threads) {
    ember::SessionOptions so;
    so.n_threads = static_cast<uint32_t>(th);
    so.n_batch = n_batch;
    so.profile = profile;
    auto session = check(P, ember::Session::create(model, so));
    ember::Session& s = *session;
    for (int64_t p : prompts) {
      if (static_cast<uint64_t>(p) > c.n_ctx) {
        std::fprintf(stderr, "%s: skipping pp%lld: longer than n_ctx %u\n", P.c_str(), static_cast<long long>(p), c.n_ctx);
        continue;
      }
      Row row{"pp" + std::to_string(p), static_cast<uint32_t>(th), 0, {}};
      for (int64_t r = -1; r < repeats; ++r) {  // r = -1: warm-up
        s.reset();
        if (r == 0) s.reset_profile();
        const double a = now_seconds();
        check(P, s.prefill(tokens.data(), static_cast<size_t>(p)));
        if (r >= 0) row.runs.push_back(p / (now_seconds() - a));
      }
      row.tok_s = median(row.runs);
      add_profile(row.test, row.threads, s);
      rows.push_back(row);
    }
    if (n_gen > 0) {
      const int64_t n = std::min<int64_t>(n_gen, c.n_ctx);
      Row row{"tg" + std::to_string(n), static_cast<uint32_t>(th), 0, {}};
      for (int64_t r = -1; r < repeats; ++r) {
        s.reset();
        if (r == 0) s.reset_profile();
        const double a = now_seconds();
        for (int64_t i = 0; i < n; ++i) check(P, s.decode(tokens[static_cast<size_t>(i)]));
        if (r >= 0) row.runs.push_back(n / (now_seconds() - a));
      }
      row.tok_s = median(row.runs);
      add_profile(row.test, row.threads, s);
      rows.push_back(row);
    }
  }
  const double rss = peak_rss_mib();
  std::string linear_type = "f32";
  for (const auto& t : model->tensors())
    if (t.name == "h.0.attn.c_attn.weight") linear_type = ember::dtype_name(t.dtype);
  if (args.has("json")) {
    std::printf("{\"model\": %s, \"file_bytes\": %llu, \"weights\": \"%s\", \"load_ms\": %.2f, \"peak_rss_mib\": %.1f, \"results\": [",
                json_escape(args.str("model")).c_str(), static_cast<unsigned long long>(model->file_size()), linear_type.c_str(),
                load_s * 1e3, rss);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::string runs;
      for (size_t j = 0; j < rows[i].runs.size(); ++j) runs += (j ? ", " : "") + std::to_string(rows[i].runs[j]);
      std::printf("%s\n  {\"test\": \"%s\", \"threads\": %u, \"tok_s\": %.2f, \"runs\": [%s]}", i ? "," : "", rows[i].test.c_str(),
                  rows[i].threads, rows[i].tok_s, runs.c_str());
    }
    std::printf("]}\n");
  } else {
    std::printf("model: %s (%s, %s linear weights), n_layer %u, n_embd %u, n_ctx %u, n_vocab %u\n", args.str("model").c_str(),
                human_bytes(model->file_size()).c_str(), linear_type.c_str(), c.n_layer, c.n_embd, c.n_ctx, c.n_vocab);
    std::printf("load: %.1f ms, peak RSS: %.1f MiB, repeats: %lld (median)\n\n", load_s * 1e3, rss, static_cast<long long>(repeats));
    std::printf("| test   | threads |    tok/s |\n|--------|---------|----------|\n");
    for (const Row& r : rows) std::printf("| %-6s | %7u | %8.1f |\n", r.test.c_str(), r.threads, r.tok_s);
    std::fputs(profiles.c_str(), stdout);
  }
  return 0;
}
