// Sampling: greedy, temperature, top-k, top-p, repetition penalty, seeding.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "ember/sampler.h"

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

TEST_CASE("top-k and top-p restrict the candidates") {
  auto k2 = make(10.0f, 2);
  auto p = make(1.0f, 0, 0.5f);  // probs ~ [.05 .36 .22 .02 .33]: {1, 4} reach 0.5
  for (int i = 0; i < 500; ++i) {
    int a = k2.sample(kLogits.data(), nullptr, 0);
    CHECK((a == 1 || a == 4));
    int b = p.sample(kLogits.data(), nullptr, 0);
    CHECK((b == 1 || b == 4));
  }
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
