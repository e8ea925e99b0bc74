// ember-bench: prefill and decode speed, load time and peak memory of a model (llama-bench style).
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/cli.h"
#include "ember/model.h"
#include "ember/roofline.h"
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

// CPU seconds of the whole process (all threads). On a loaded machine a 1-thread run's tokens per CPU
// second stay close to its speed on a quiet one (time spent preempted is not counted); with more threads
// the pool's waiting (spinning briefly before its threads sleep) counts too.
double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Row {
  std::string test;  // "pp512", "tg128", or "tg128@d512" (decode after a 512-token context)
  std::string kv;    // KV cache type
  uint32_t threads;
  uint32_t sessions;  // concurrent streams; tok/s is their sum
  int64_t depth;     // tokens in the context before a decode test (0 for prefill tests)
  double tok_s = 0, cpu_tok_s = 0;  // medians: tokens per wall-clock second, per CPU second
  double kv_mib = 0;                // KV cache in use at the end of the test (depth + tokens positions)
  double bytes_per_token = 0;       // decode tests: weights + KV rows read per token (mean over the test)
  std::vector<double> runs, cpu_runs;
};

}  // namespace

int main(int argc, char** argv) {
  Args args("ember-bench",
            "ember-bench -m MODEL [-p 64,512] [-n 128] [-d 0,512] [-t 1,2] [-s 1,2] [--kv f32,int8] [-r 5] [--bandwidth-mib N]\n"
            "            [--json] [--profile]",
            "Measures a model like llama-bench: prefill speed for each prompt length (ppN: N random tokens\n"
            "from an empty context), decode speed (tgN: N tokens one at a time from an empty context; with\n"
            "-d D, tgN@dD: after D context tokens, prefilled untimed before each repeat), as the median of R\n"
            "repeats after one warm-up, for each thread count and KV cache type. The KV types take turns\n"
            "within each repeat, so a loaded machine slows them alike; the CPU tok/s column (tokens per\n"
            "process CPU second) is the loaded machine's best estimate of a quiet one at 1 thread. Plus load\n"
            "time, peak RSS (run one --kv type per process to compare memory) and the KV cache in use.\n"
            "Tests that do not fit n_ctx are skipped. --profile adds time per op. With -s S, S sessions of the\n"
            "model run each test at once, one per thread (each with -t threads), as a device serving S\n"
            "streams would: tok/s is their total; an all-int8 model computes them in parallel, a float one\n"
            "in turns (see include/ember/session.h). The header names the kernel table that ran; the\n"
            "environment variable EMBER_KERNELS pins one (ref, or a table this CPU runs, e.g. avx2 on an\n"
            "AVX-VNNI CPU) to compare.\n"
            "Roofline: for each thread count with decode tests, the machine's read bandwidth (all threads\n"
            "reading one buffer of --bandwidth-mib MiB, by default 4x the last-level cache and at least 256 MiB,\n"
            "so DRAM's), and for each decode test the bytes of weights and KV cache read per token (MB/tok)\n"
            "and the fraction of that bandwidth the test reached (roof: MB/tok * tok/s / bandwidth). When\n"
            "the bytes per token fit the last-level cache, the weights can stay cached between tokens and\n"
            "the roofline is not DRAM's (a note says so; roof can then pass 100%).");
  args.option("model", "m", "MODEL", "model file (.ember)");
  args.option("prompt", "p", "N,...", "prompt lengths for the prefill test", "64,512");
  args.option("n-gen", "n", "N", "tokens for the decode test (0: skip)", "128");
  args.option("depth", "d", "D,...", "context tokens before each decode test", "0");
  args.option("kv", "", "TYPE,...", "KV cache types (f32, int8)", ember::kv_type_name(ember::SessionOptions().kv_type));
  args.option("threads", "t", "N,...", "thread counts (more than the CPUs this process may use are capped to them)", "1,2");
  args.option("oversubscribe", "", "", "run thread counts above the CPU count as given (to measure what the cap avoids)");
  args.option("sessions", "s", "S,...", "concurrent sessions (streams) per test", "1");
  args.option("repeats", "r", "R", "repeats per test (median reported)", "5");
  args.option("batch", "b", "N", "prefill micro-batch size", "64");
  args.option("bandwidth-mib", "", "N", "read bandwidth buffer in MiB (default: 4x the last-level cache, >= 256; 0: no roofline)");
  args.option("json", "", "", "print results as JSON");
  args.option("profile", "", "", "print time per op for each test");
  args.parse(argc, argv);
  const std::string P = args.prog();
  if (!args.has("model")) args.usage_error("no model given (-m MODEL)");
  const std::vector<int64_t> prompts = parse_list(args, "prompt", 1, 1 << 20);
  const std::vector<int64_t> threads = parse_list(args, "threads", 1, 1024);
  const std::vector<int64_t> streams = parse_list(args, "sessions", 1, 256);
  const int64_t n_gen = args.integer("n-gen", 0, 1 << 20);
  const std::vector<int64_t> depths = parse_list(args, "depth", 0, 1 << 20);
  std::vector<ember::KvType> kv_types;
  {
    std::stringstream ss(args.str("kv"));
    std::string item;
    while (std::getline(ss, item, ',')) {
      auto t = ember::kv_type_from_name(item);
      if (!t.ok()) args.usage_error("--kv: " + t.status().message());
      kv_types.push_back(*t);
    }
    if (kv_types.empty()) args.usage_error("--kv: no KV cache type given");
  }
  const int64_t repeats = args.integer("repeats", 1, 1000);
  const uint32_t n_batch = static_cast<uint32_t>(args.integer("batch", 1, 1 << 16));
  const bool profile = args.has("profile");
  const size_t llc = ember::last_level_cache_bytes();
  size_t bw_bytes = std::max<size_t>(4 * llc, size_t{256} << 20);
  if (args.has("bandwidth-mib")) {
    bw_bytes = static_cast<size_t>(args.integer("bandwidth-mib", 0, 1 << 20)) << 20;
    // measure_read_bandwidth's limits, checked now rather than after the tests: 64 KiB per thread (the most
    // threads that will run) and no more than the machine's memory.
    size_t most = static_cast<size_t>(*std::max_element(threads.begin(), threads.end()));
    if (!args.has("oversubscribe")) most = std::min(most, ember::available_cpus());
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (bw_bytes > 0 && bw_bytes < most * (size_t{64} << 10))
      args.usage_error("--bandwidth-mib " + args.str("bandwidth-mib") + " is too small for " + std::to_string(most) +
                       " threads (64 KiB each)");
    if (pages > 0 && page > 0 && bw_bytes > static_cast<size_t>(pages) * static_cast<size_t>(page))
      args.usage_error("--bandwidth-mib " + args.str("bandwidth-mib") + " exceeds the machine's memory");
  }

  const double t0 = now_seconds();
  auto model = check(P, ember::Model::load(args.str("model")));
  const double load_s = now_seconds() - t0;
  const ember::ModelConfig& c = model->config();
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab) - 1);
  std::vector<int32_t> tokens(c.n_ctx);
  for (int32_t& t : tokens) t = tok(rng);

  std::vector<Row> rows;
  std::vector<uint32_t> bw_threads;              // thread counts (as used) with decode tests
  std::vector<ember::ReadBandwidth> bandwidths;  // their read bandwidths, measured after the tests
  auto bandwidth_of = [&](uint32_t th) -> const ember::ReadBandwidth* {
    for (const auto& b : bandwidths)
      if (b.n_threads == th) return &b;
    return nullptr;
  };
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
  // One test: `repeats` timed runs (after a warm-up) of every KV type in turn; `run(session)` returns the
  // tokens processed in the timed part, `prepare(session)` sets up the untimed part. groups[k] holds the
  // sessions of KV type k that run the test at once, each in its own thread (the first in this one).
  using Group = std::vector<std::unique_ptr<ember::Session>>;
  auto measure = [&](std::vector<Group>& groups, const std::string& test, uint32_t th, int64_t depth, int64_t positions,
                     const std::function<void(ember::Session&)>& prepare, const std::function<int64_t(ember::Session&)>& run) {
    std::vector<Row> out;
    for (auto& g : groups)
      out.push_back(Row{test, ember::kv_type_name(g[0]->kv_type()), th, static_cast<uint32_t>(g.size()), depth, 0, 0,
                        g.size() * g[0]->kv_cache_bytes() * static_cast<double>(positions) / c.n_ctx / (1024.0 * 1024.0), 0, {}, {}});
    for (int64_t r = -1; r < repeats; ++r) {  // r = -1: warm-up
      for (size_t k = 0; k < groups.size(); ++k) {
        for (auto& s : groups[k]) {
          s->reset();
          prepare(*s);
          if (r == 0) s->reset_profile();
        }
        std::vector<int64_t> done(groups[k].size(), 0);
        const double a = now_seconds(), ca = cpu_seconds();
        std::vector<std::thread> others;
        for (size_t j = 1; j < groups[k].size(); ++j) others.emplace_back([&, j] { done[j] = run(*groups[k][j]); });
        done[0] = run(*groups[k][0]);
        for (auto& t : others) t.join();
        const double wall = now_seconds() - a, cpu = cpu_seconds() - ca;
        int64_t n = 0;
        for (int64_t d : done) n += d;
        if (r >= 0) {
          out[k].runs.push_back(n / wall);
          out[k].cpu_runs.push_back(n / (cpu > 0 ? cpu : 1e-9));
        }
      }
    }
    for (size_t k = 0; k < groups.size(); ++k) {
      out[k].tok_s = median(out[k].runs);
      out[k].cpu_tok_s = median(out[k].cpu_runs);
      add_profile(test + ", kv " + out[k].kv, th, *groups[k][0]);
      rows.push_back(out[k]);
    }
  };
  for (int64_t th : threads) for (int64_t ns : streams) {
    std::vector<Group> sessions;
    for (ember::KvType kv : kv_types) {
      ember::SessionOptions so;
      so.n_threads = static_cast<uint32_t>(th);
      so.oversubscribe = args.has("oversubscribe");
      so.n_batch = n_batch;
      so.profile = profile;
      so.kv_type = kv;
      sessions.emplace_back();
      for (int64_t j = 0; j < ns; ++j) sessions.back().push_back(check(P, ember::Session::create(model, so)));
    }
    const uint32_t t32 = sessions[0][0]->n_threads();  // as used: capped at the CPUs unless --oversubscribe
    if (n_gen > 0 && bw_bytes > 0 && std::find(bw_threads.begin(), bw_threads.end(), t32) == bw_threads.end())
      bw_threads.push_back(t32);
    for (int64_t p : prompts) {
      if (static_cast<uint64_t>(p) > c.n_ctx) {
        std::fprintf(stderr, "%s: skipping pp%lld: longer than n_ctx %u\n", P.c_str(), static_cast<long long>(p), c.n_ctx);
        continue;
      }
      measure(sessions, "pp" + std::to_string(p), t32, 0, p, [](ember::Session&) {},
              [&](ember::Session& s) {
                check(P, s.prefill(tokens.data(), static_cast<size_t>(p)));
                return p;
              });
    }
    for (int64_t d : n_gen > 0 ? depths : std::vector<int64_t>{}) {
      const int64_t n = std::min<int64_t>(n_gen, c.n_ctx);
      const std::string test = "tg" + std::to_string(n) + (d > 0 ? "@d" + std::to_string(d) : "");
      if (static_cast<uint64_t>(d + n) > c.n_ctx) {
        std::fprintf(stderr, "%s: skipping %s: %lld + %lld tokens exceed n_ctx %u\n", P.c_str(), test.c_str(),
                     static_cast<long long>(d), static_cast<long long>(n), c.n_ctx);
        continue;
      }
      const size_t first_row = rows.size();
      measure(sessions, test, t32, d, d + n,
              [&](ember::Session& s) {
                if (d > 0) check(P, s.prefill(tokens.data(), static_cast<size_t>(d)));  // the context, untimed
              },
              [&](ember::Session& s) {
                for (int64_t i = 0; i < n; ++i) check(P, s.decode(tokens[static_cast<size_t>(d + i)]));
                return n;
              });
      // Bytes read per token, the mean over the test's positions d .. d + n - 1 (the KV part grows with them).
      for (size_t k = first_row; k < rows.size(); ++k) {
        const ember::KvType kv = *ember::kv_type_from_name(rows[k].kv);
        double sum = 0;
        for (int64_t i = 0; i < n; ++i)
          sum += static_cast<double>(check(P, ember::decode_traffic(*model, static_cast<size_t>(d + i), kv)).total());
        rows[k].bytes_per_token = sum / static_cast<double>(n);
      }
    }
  }
  const double rss = peak_rss_mib();
  // After the tests and the peak RSS: the buffer would count in the RSS and push the model out of the caches.
  for (uint32_t th : bw_threads) bandwidths.push_back(check(P, ember::measure_read_bandwidth(th, bw_bytes)));
  std::string linear_type = "f32";
  for (const auto& t : model->tensors())
    if (t.name == "h.0.attn.c_attn.weight") linear_type = ember::dtype_name(t.dtype);
  // The roofline of a decode row: the fraction of its thread count's read bandwidth that its bytes per
  // token at its tok/s make (< 0: not measured).
  auto roof = [&](const Row& r) {
    const ember::ReadBandwidth* b = bandwidth_of(r.threads);
    return b && r.bytes_per_token > 0 ? r.bytes_per_token * r.tok_s / b->bytes_per_second : -1.0;
  };
  auto fits_llc = [&](const Row& r) { return llc > 0 && r.bytes_per_token <= static_cast<double>(llc); };
  double max_bytes = 0;  // the largest bytes per token of the decode rows
  for (const Row& r : rows) max_bytes = std::max(max_bytes, r.bytes_per_token);
  if (args.has("json")) {
    std::printf("{\"model\": %s, \"file_bytes\": %llu, \"weights\": \"%s\", \"kernels\": \"%s\", \"load_ms\": %.2f, "
                "\"peak_rss_mib\": %.1f, \"llc_bytes\": %zu, \"bandwidth\": [",
                json_escape(args.str("model")).c_str(), static_cast<unsigned long long>(model->file_size()), linear_type.c_str(),
                ember::kernel_table_name(), load_s * 1e3, rss, llc);
    for (size_t i = 0; i < bandwidths.size(); ++i) {
      const ember::ReadBandwidth& b = bandwidths[i];
      std::printf("%s{\"threads\": %zu, \"buffer_bytes\": %zu, \"bytes_per_s\": %.0f, \"best_bytes_per_s\": %.0f, \"passes\": %zu}",
                  i ? ", " : "", b.n_threads, b.buffer_bytes, b.bytes_per_second, b.best_bytes_per_second, b.passes);
    }
    std::printf("], \"results\": [");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::string runs;
      for (size_t j = 0; j < r.runs.size(); ++j) runs += (j ? ", " : "") + std::to_string(r.runs[j]);
      std::string traffic;  // decode rows only
      if (r.bytes_per_token > 0) {
        char buf[160];
        const double f = roof(r);
        std::snprintf(buf, sizeof buf, ", \"bytes_per_token\": %.0f, \"fits_llc\": %s, \"roofline\": ", r.bytes_per_token,
                      fits_llc(r) ? "true" : "false");
        traffic = buf;
        if (f >= 0) {
          std::snprintf(buf, sizeof buf, "%.4f", f);
          traffic += buf;
        } else {
          traffic += "null";
        }
      }
      std::printf("%s\n  {\"test\": \"%s\", \"kv\": \"%s\", \"threads\": %u, \"sessions\": %u, \"depth\": %lld, \"tok_s\": %.2f, "
                  "\"cpu_tok_s\": %.2f, \"kv_mib\": %.2f%s, \"runs\": [%s]}",
                  i ? "," : "", r.test.c_str(), r.kv.c_str(), r.threads, r.sessions, static_cast<long long>(r.depth), r.tok_s,
                  r.cpu_tok_s, r.kv_mib, traffic.c_str(), runs.c_str());
    }
    std::printf("]}\n");
  } else {
    std::printf("model: %s (%s, %s linear weights), n_layer %u, n_embd %u, n_ctx %u, n_vocab %u\n", args.str("model").c_str(),
                human_bytes(model->file_size()).c_str(), linear_type.c_str(), c.n_layer, c.n_embd, c.n_ctx, c.n_vocab);
    std::printf("kernels: %s, load: %.1f ms, peak RSS: %.1f MiB, repeats: %lld (median)\n", ember::kernel_table_name(),
                load_s * 1e3, rss, static_cast<long long>(repeats));
    if (!bandwidths.empty()) {
      std::printf("read bandwidth (buffer %s, median pass):", human_bytes(bandwidths[0].buffer_bytes).c_str());
      for (size_t i = 0; i < bandwidths.size(); ++i)
        std::printf("%s %.2f GB/s at %zu thread%s", i ? "," : "", bandwidths[i].bytes_per_second / 1e9, bandwidths[i].n_threads,
                    bandwidths[i].n_threads == 1 ? "" : "s");
      std::printf("; last-level cache: %s\n", llc ? human_bytes(llc).c_str() : "unknown");
      if (llc > 0 && max_bytes > 0 && max_bytes <= static_cast<double>(llc))
        std::printf("note: a decoded token reads at most %.1f MB, which fits the last-level cache: the weights can stay cached\n"
                    "      between tokens, so the roofline is not DRAM's bandwidth and roof can pass 100%%\n",
                    max_bytes / 1e6);
    }
    std::printf("\n");
    const bool many = std::any_of(streams.begin(), streams.end(), [](int64_t n) { return n > 1; });  // else no column
    const bool traffic = max_bytes > 0;  // decode rows: bytes per token and roofline columns
    std::printf("| test         | kv   | threads |%s    tok/s | CPU tok/s | KV MiB |%s\n"
                "|--------------|------|---------|%s----------|-----------|--------|%s\n",
                many ? " sessions |" : "", traffic ? " MB/tok |   roof |" : "", many ? "----------|" : "",
                traffic ? "--------|--------|" : "");
    for (const Row& r : rows) {
      std::printf("| %-12s | %-4s | %7u |", r.test.c_str(), r.kv.c_str(), r.threads);
      if (many) std::printf(" %8u |", r.sessions);
      std::printf(" %8.1f | %9.1f | %6.1f |", r.tok_s, r.cpu_tok_s, r.kv_mib);
      if (traffic) {
        const double f = roof(r);
        if (r.bytes_per_token > 0)
          std::printf(" %6.1f |", r.bytes_per_token / 1e6);
        else
          std::printf(" %6s |", "-");
        if (f >= 0)
          std::printf(" %5.1f%% |", 100 * f);
        else
          std::printf(" %6s |", "-");
      }
      std::printf("\n");
    }
    std::fputs(profiles.c_str(), stdout);
  }
  return 0;
}
