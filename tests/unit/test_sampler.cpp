// Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeding; the whole pipeline against
// the distribution of an independent numpy implementation (tests/unit/sampler_reference.py, its output
// in tests/data/sampler/reference.json), and seeded draws against it by chi-square.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "ember/sampler.h"
#include "test_paths.h"

namespace {
ember::Sampler make(float temp, int top_k = 0, float top_p = 1.0f, float penalty = 1.0f, uint64_t seed = 1, size_t V = 5) {
  ember::SamplerParams p;
  p.temperature = temp;
  p.top_k = top_k;
  p.top_p = top_p;
  p.repeat_penalty = penalty;
  p.seed = seed;
  auto s = ember::Sampler::create(p, V);
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}
const std::vector<float> kLogits = {0.1f, 2.0f, 1.5f, -1.0f, 1.9f};
}  // namespace

TEST_CASE("greedy picks the argmax; top_k = 1 and a tiny top_p are greedy at any temperature") {
  auto g = make(0.0f);
  CHECK(g.sample(kLogits.data(), nullptr, 0) == 1);
  auto k1 = make(5.0f, 1);
  auto p0 = make(5.0f, 0, 1e-6f);
  for (int i = 0; i < 50; ++i) {
    CHECK(k1.sample(kLogits.data(), nullptr, 0) == 1);
    CHECK(p0.sample(kLogits.data(), nullptr, 0) == 1);
  }
}

TEST_CASE("draws follow softmax(logits / T)") {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto s = make(1.0f, 0, 1.0f, 1.0f, 99, 3);
  std::vector<int> count(3);
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[s.sample(l.data(), nullptr, 0)];
  CHECK(count[0] / double(n) == doctest::Approx(0.5).epsilon(0.04));
  CHECK(count[1] / double(n) == doctest::Approx(0.3).epsilon(0.06));
  CHECK(count[2] / double(n) == doctest::Approx(0.2).epsilon(0.08));
  // T = 0.5 squares the probabilities before normalising: 25/38, 9/38, 4/38.
  auto c = make(0.5f, 0, 1.0f, 1.0f, 7, 3);
  std::vector<int> cc(3);
  for (int i = 0; i < n; ++i) ++cc[c.sample(l.data(), nullptr, 0)];
  CHECK(cc[0] / double(n) == doctest::Approx(25.0 / 38).epsilon(0.04));
}

TEST_CASE("top-k and top-p restrict the candidates, and both are drawn from") {
  auto k2 = make(10.0f, 2);
  auto p = make(1.0f, 0, 0.5f);  // probs ~ [.05 .36 .22 .02 .33]: {1, 4} reach 0.5
  int ka[5] = {}, pb[5] = {};
  for (int i = 0; i < 500; ++i) {
    ++ka[k2.sample(kLogits.data(), nullptr, 0)];
    ++pb[p.sample(kLogits.data(), nullptr, 0)];
  }
  // Only 1 and 4, each about half the time (2.0 and 1.9: 0.5 +- 0.0025 at T 10; 0.52 / 0.48 at T 1).
  CHECK(ka[1] + ka[4] == 500);
  CHECK(pb[1] + pb[4] == 500);
  CHECK(ka[1] > 200);
  CHECK(ka[4] > 200);
  CHECK(pb[1] > 200);
  CHECK(pb[4] > 200);
}

TEST_CASE("repetition penalty demotes recent tokens") {
  auto g = make(0.0f, 0, 1.0f, 1.2f);
  const int32_t hist[] = {1, 1, 1};
  CHECK(g.sample(kLogits.data(), hist, 3) == 4);  // 2.0 / 1.2 < 1.9
  const std::vector<float> neg = {-1.0f, -1.1f};
  auto g2 = make(0.0f, 0, 1.0f, 1.2f, 1, 2);
  const int32_t h0[] = {0};
  CHECK(g2.sample(neg.data(), h0, 1) == 1);  // -1.2 < -1.1
}

TEST_CASE("a seed reproduces a run; another seed differs") {
  auto a = make(1.0f, 0, 1.0f, 1.0f, 42), b = make(1.0f, 0, 1.0f, 1.0f, 42), c = make(1.0f, 0, 1.0f, 1.0f, 43);
  std::vector<int> ra, rb, rc;
  for (int i = 0; i < 200; ++i) {
    ra.push_back(a.sample(kLogits.data(), nullptr, 0));
    rb.push_back(b.sample(kLogits.data(), nullptr, 0));
    rc.push_back(c.sample(kLogits.data(), nullptr, 0));
  }
  CHECK(ra == rb);
  CHECK(ra != rc);
}

TEST_CASE("bad parameters are refused with the parameter named") {
  ember::SamplerParams p;
  p.top_p = 0.0f;
  auto r = ember::Sampler::create(p, 10);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("top_p") != std::string::npos);
  p = {};
  p.temperature = NAN;
  CHECK_FALSE(ember::Sampler::create(p, 10).ok());
  p = {};
  p.repeat_penalty = 0.0f;
  CHECK_FALSE(ember::Sampler::create(p, 10).ok());
  CHECK_FALSE(ember::Sampler::create({}, 0).ok());
}

namespace {

struct RefCase {
  std::string name;
  ember::SamplerParams params;
  std::vector<float> logits;
  std::vector<int32_t> history, candidates;
  std::vector<double> probs;
};

std::vector<RefCase> reference_cases() {
  const std::string path = ember_test::data_dir() + "/sampler/reference.json";
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  const nlohmann::json j = nlohmann::json::parse(f);
  std::vector<RefCase> out;
  for (const auto& c : j["cases"]) {
    RefCase r;
    r.name = c["name"].get<std::string>();
    r.params.temperature = c["temperature"].get<float>();
    r.params.top_k = c["top_k"].get<int32_t>();
    r.params.top_p = c["top_p"].get<float>();
    r.params.repeat_penalty = c["repeat_penalty"].get<float>();
    r.params.repeat_last_n = c["repeat_last_n"].get<int32_t>();
    r.logits = c["logits"].get<std::vector<float>>();
    for (int32_t i : c["neg_inf"].get<std::vector<int32_t>>()) r.logits[i] = -INFINITY;
    r.history = c["history"].get<std::vector<int32_t>>();
    r.candidates = c["candidates"].get<std::vector<int32_t>>();
    r.probs = c["probs"].get<std::vector<double>>();
    REQUIRE(r.logits.size() == c["n_vocab"].get<size_t>());
    REQUIRE(r.probs.size() == r.logits.size());
    out.push_back(std::move(r));
  }
  REQUIRE(out.size() > 300);
  return out;
}

ember::Sampler make_from(const RefCase& c, uint64_t seed) {
  ember::SamplerParams p = c.params;
  p.seed = seed;
  auto s = ember::Sampler::create(p, c.logits.size());
  REQUIRE_MESSAGE(s.ok(), s.status().message());
  return std::move(s).value();
}

// Wilson-Hilferty: the chi-square quantile of df degrees of freedom at the normal quantile z.
double chi2_quantile(double df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

}  // namespace

TEST_CASE("probabilities() is the numpy reference's distribution: exact candidates, probabilities to 1e-6") {
  // Random logits (ties included), histories with repeats and ids outside the vocabulary, windows at
  // and around the history's length, every temperature / top-k / top-p / penalty combination, and named
  // edge cases. The reference keeps only cases where float32 rounding cannot change the candidates.
  double worst = 0.0;
  size_t n_cases = 0;
  for (const RefCase& c : reference_cases()) {
    CAPTURE(c.name);
    auto s = make_from(c, 1);
    std::vector<float> got(c.logits.size(), NAN);
    s.probabilities(c.logits.data(), c.history.data(), c.history.size(), got.data());
    std::vector<int32_t> support;
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i] > 0.0f) support.push_back(static_cast<int32_t>(i));
    std::vector<int32_t> want = c.candidates;
    std::sort(want.begin(), want.end());
    CHECK(support == want);
    double sum = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(std::fabs(got[i] - c.probs[i]) <= 1e-6);
      worst = std::max(worst, std::fabs(got[i] - c.probs[i]));
      sum += got[i];
    }
    CHECK(std::fabs(sum - 1.0) < 1e-5);
    // sample() draws only candidates; with one candidate, always it.
    for (int k = 0; k < 20; ++k) {
      const int32_t t = s.sample(c.logits.data(), c.history.data(), c.history.size());
      REQUIRE((t >= 0 && static_cast<size_t>(t) < got.size()));
      CHECK(got[t] > 0.0f);
    }
    ++n_cases;
  }
  MESSAGE(n_cases << " reference cases: max |p - p_ref| " << worst << " (asserted 1e-6)");
}

TEST_CASE("seeded draws follow the reference distribution (chi-square per case and pooled)") {
  // 4000 draws per case with two or more candidates, seed = case index: deterministic. Bins with an
  // expected count below 5 are pooled. Each case's statistic must stay below the quantile at
  // z = 4.75 (p ~ 1e-6), the sum over all cases below the pooled quantile at the same z: a sampler that
  // draws from another distribution (an unrenormalised top-p, another order) exceeds them by far.
  const int n = 4000;
  double chi2_sum = 0.0, df_sum = 0.0, worst_ratio = 0.0;
  size_t tested = 0, seed = 0;
  for (const RefCase& c : reference_cases()) {
    ++seed;
    if (c.candidates.size() < 2) continue;
    CAPTURE(c.name);
    auto s = make_from(c, seed);
    std::vector<int> count(c.logits.size(), 0);
    for (int k = 0; k < n; ++k) ++count[s.sample(c.logits.data(), c.history.data(), c.history.size())];
    double chi2 = 0.0, pool_e = 0.0, pool_o = 0.0;
    int bins = 0;
    for (size_t i = 0; i < count.size(); ++i) {
      const double e = n * c.probs[i];
      if (c.probs[i] == 0.0) {
        CHECK(count[i] == 0);  // outside the candidates
        continue;
      }
      if (e < 5.0) {
        pool_e += e;
        pool_o += count[i];
        continue;
      }
      chi2 += (count[i] - e) * (count[i] - e) / e;
      ++bins;
    }
    if (pool_e > 0.0) {
      chi2 += (pool_o - pool_e) * (pool_o - pool_e) / std::max(pool_e, 1.0);
      ++bins;
    }
    if (bins < 2) continue;
    const double df = bins - 1, limit = chi2_quantile(df, 4.75);
    CAPTURE(chi2);
    CAPTURE(df);
    CHECK(chi2 < limit);
    worst_ratio = std::max(worst_ratio, chi2 / limit);
    chi2_sum += chi2;
    df_sum += df;
    ++tested;
  }
  REQUIRE(tested > 100);
  MESSAGE(tested << " cases, chi-square " << chi2_sum << " on " << df_sum << " degrees of freedom (limit "
                 << chi2_quantile(df_sum, 4.75) << "); worst case at " << worst_ratio << " of its limit");
  CHECK(chi2_sum < chi2_quantile(df_sum, 4.75));
}

TEST_CASE("probabilities() does not draw: interleaved calls leave the seeded sequence unchanged") {
  auto a = make(0.9f, 3, 0.9f, 1.2f, 11), b = make(0.9f, 3, 0.9f, 1.2f, 11);
  const int32_t hist[] = {1, 4, 4};
  std::vector<float> p(kLogits.size());
  for (int i = 0; i < 100; ++i) {
    b.probabilities(kLogits.data(), hist, 3, p.data());
    CHECK(a.sample(kLogits.data(), hist, 3) == b.sample(kLogits.data(), hist, 3));
  }
}

TEST_CASE("probabilities(): greedy and the no-draw cases put 1 on the token sample() returns") {
  std::vector<float> p(kLogits.size());
  auto g = make(0.0f, 0, 1.0f, 1.2f);
  const int32_t hist[] = {1};
  g.probabilities(kLogits.data(), hist, 1, p.data());
  CHECK(p == std::vector<float>{0, 0, 0, 0, 1});  // 2.0 / 1.2 < 1.9
  CHECK(g.sample(kLogits.data(), hist, 1) == 4);
  auto t = make(1.0f);
  const std::vector<float> inf = {0.0f, INFINITY, NAN, INFINITY, 1.0f};
  t.probabilities(inf.data(), nullptr, 0, p.data());
  CHECK(p == std::vector<float>{0, 1, 0, 0, 0});
  CHECK(t.sample(inf.data(), nullptr, 0) == 1);
}
