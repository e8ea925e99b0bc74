// One loaded model shared by sessions in 4 threads: each gets exactly what it gets running alone.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/threadpool.h"
#include "ember/convert.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "test_paths.h"

namespace {

std::shared_ptr<const ember::Model> load(const std::string& name, bool int8) {
  auto spec = ember::import_model(ember_test::data_dir() + "/golden/" + name);
  REQUIRE(spec.ok());
  if (int8) REQUIRE(ember::quantize_model(*spec, {}).ok());
  const std::string p = ember_test::temp_dir() + "/ember_threads_" + name + (int8 ? "8" : "") + ".ember";
  REQUIRE(ember::write_model_file(*spec, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE(m.ok());
  std::remove(p.c_str());
  return *m;
}

// Samples `n` tokens (seeded) after a prompt; returns the tokens and the final logits.
std::pair<std::vector<int32_t>, std::vector<float>> run(std::shared_ptr<const ember::Model> m, uint64_t seed, uint32_t threads) {
  ember::SessionOptions so;
  so.n_threads = threads;
  auto s = ember::Session::create(m, so);
  if (!s.ok()) return {};
  ember::SamplerParams sp;
  sp.seed = seed;
  auto sampler = ember::Sampler::create(sp, m->config().n_vocab);
  std::vector<int32_t> hist = {static_cast<int32_t>(seed % 7), 3, 5};
  if (!(*s)->prefill(hist.data(), hist.size()).ok()) return {};
  while (hist.size() < m->config().n_ctx) {
    hist.push_back(sampler->sample((*s)->logits(), hist.data(), hist.size()));
    if (hist.size() < m->config().n_ctx && !(*s)->decode(hist.back()).ok()) return {};
  }
  return {hist, std::vector<float>((*s)->logits(), (*s)->logits() + m->config().n_vocab)};
}

// 4 threads, each with its own session of one model, float and int8, twice over: every result equals the
// solo run of the same seed. first_pool: the threads of the first session's pool (the others have 1).
void check_shared_matches_solo(uint32_t first_pool) {
  for (bool int8 : {false, true}) {
    CAPTURE(int8);
    auto m = load("gpt2", int8);
    std::vector<std::pair<std::vector<int32_t>, std::vector<float>>> solo(4), shared(4);
    for (uint64_t i = 0; i < 4; ++i) solo[i] = run(m, 100 + i, 1);
    std::vector<std::thread> ts;
    for (uint64_t i = 0; i < 4; ++i)
      ts.emplace_back([&, i] {
        for (int rep = 0; rep < 2; ++rep) shared[i] = run(m, 100 + i, i == 0 ? first_pool : 1);
      });
    for (auto& t : ts) t.join();
    for (size_t i = 0; i < 4; ++i) {
      CAPTURE(i);
      REQUIRE(!solo[i].first.empty());
      CHECK(shared[i].first == solo[i].first);
      CHECK(shared[i].second == solo[i].second);
    }
    CHECK(solo[0].first != solo[1].first);  // the seeds really differ
  }
}

}  // namespace

TEST_CASE("4 threads sharing one model each match their solo run") { check_shared_matches_solo(2); }

// tools/test.sh also runs this case under ThreadSanitizer: with one-thread pools no pool worker runs (a
// float model's XNNPACK operators use pthreadpool, which is not instrumented, so TSan could not see its
// synchronisation), and what is left is exactly the sessions' concurrency: int8 models compute without
// the model's lock. ember's own pool is checked by the next case.
TEST_CASE("4 threads sharing one model, one-thread pools (the ThreadSanitizer case)") { check_shared_matches_solo(1); }

// ember's own pool (src/core/threadpool.h), which the ThreadSanitizer run also checks (its threads and
// atomics are instrumented, unlike pthreadpool's): every item exactly once, for every loop shape and
// size, through thousands of back-to-back loops (workers spinning and sleeping between them), with more
// threads than cores (oversubscribed: threads the OS does not run take fewer items, never wrong ones).
TEST_CASE("thread pool: every item exactly once, back to back, oversubscribed (the ThreadSanitizer case)") {
  for (size_t threads : {size_t{2}, size_t{3}, size_t{8}}) {
    CAPTURE(threads);
    ember::ThreadPool pool(threads, /*oversubscribe=*/true);
    REQUIRE(pool.n_threads() == threads);
    std::vector<std::atomic<int>> hits(5000);
    uint64_t expect = 0;
    std::atomic<uint64_t> sum{0};
    for (size_t loop = 0; loop < 3000; ++loop) {
      const size_t n = (loop * 7919) % 97;  // 0..96, including 0 and 1
      ember::parallel_for(&pool, n, [&](size_t i) {
        hits[i].fetch_add(1, std::memory_order_relaxed);
        sum.fetch_add(loop * 1000 + i, std::memory_order_relaxed);
      });
      for (size_t i = 0; i < n; ++i) {
        if (hits[i].load() != 1) FAIL("loop " << loop << ", item " << i << " ran " << hits[i].load() << " times");
        hits[i].store(0);
        expect += loop * 1000 + i;
      }
      if (loop % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let workers sleep
    }
    CHECK(sum.load() == expect);
    // Tiles and 2-D loops cover their ranges exactly, with the last tile short.
    std::vector<int> grid(37 * 53, 0);
    ember::parallel_for_tiles_2d(&pool, 37, 53, 8, 16, [&](size_t i0, size_t j0, size_t ni, size_t nj) {
      for (size_t i = i0; i < i0 + ni; ++i)
        for (size_t j = j0; j < j0 + nj; ++j) grid[i * 53 + j] += 1;  // tiles are disjoint
    });
    ember::parallel_for_2d(&pool, 37, 53, [&](size_t i, size_t j) { grid[i * 53 + j] += 10; });
    ember::parallel_for_tiles(&pool, 37 * 53, 100, [&](size_t i0, size_t k) {
      for (size_t i = i0; i < i0 + k; ++i) grid[i] += 100;
    });
    for (size_t i = 0; i < grid.size(); ++i)
      if (grid[i] != 111) FAIL("cell " << i << " = " << grid[i]);
  }
  // Capped at the CPUs this process may use unless oversubscribed; a null pool runs on the caller.
  CHECK(ember::ThreadPool(1024).n_threads() == ember::available_cpus());
  size_t count = 0;
  ember::parallel_for(nullptr, 10, [&](size_t) { ++count; });
  CHECK(count == 10);
}
