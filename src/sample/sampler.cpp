#include "ember/sampler.h"

#include <algorithm>
#include <cmath>

namespace ember {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Result<Sampler> Sampler::create(const SamplerParams& p, size_t n_vocab) {
  if (n_vocab == 0) return invalid_argument("sampler: n_vocab is 0");
  if (std::isnan(p.temperature) || std::isinf(p.temperature)) return invalid_argument("sampler: temperature must be a number");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return invalid_argument("sampler: top_p must be in (0, 1]");
  if (!(p.repeat_penalty > 0.0f) || std::isinf(p.repeat_penalty)) return invalid_argument("sampler: repeat_penalty must be > 0");
  Sampler s;
  s.p_ = p;
  s.n_vocab_ = n_vocab;
  uint64_t x = p.seed;
  for (uint64_t& w : s.s_) w = splitmix64(x);
  s.logits_.resize(n_vocab);
  s.idx_.resize(n_vocab);
  s.seen_.assign(n_vocab, 0);
  return s;
}

double Sampler::uniform() {
  const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return static_cast<double>(r >> 11) * 0x1.0p-53;
}

Sampler::Candidates Sampler::candidates(const float* logits, const int32_t* history, size_t n_history) {
  const size_t V = n_vocab_;
  float* l = logits_.data();
  // A NaN logit (a broken or hostile model) would make the ordering below inconsistent, which
  // std::sort and std::nth_element do not allow: it is never chosen.
  for (size_t i = 0; i < V; ++i) l[i] = std::isnan(logits[i]) ? -INFINITY : logits[i];
  if (p_.repeat_penalty != 1.0f && n_history > 0) {
    if (++stamp_ == 0) {  // wrapped: clear the marks
      std::fill(seen_.begin(), seen_.end(), 0);
      stamp_ = 1;
    }
    size_t from = 0;
    if (p_.repeat_last_n >= 0 && n_history > static_cast<size_t>(p_.repeat_last_n)) from = n_history - p_.repeat_last_n;
    for (size_t i = from; i < n_history; ++i) {
      const int32_t t = history[i];
      if (t < 0 || static_cast<size_t>(t) >= V || seen_[t] == stamp_) continue;
      seen_[t] = stamp_;
      l[t] = l[t] > 0.0f ? l[t] / p_.repeat_penalty : l[t] * p_.repeat_penalty;
    }
  }
  if (p_.temperature <= 0.0f) return {0, 0.0, static_cast<int32_t>(std::max_element(l, l + V) - l)};

  const float inv_t = 1.0f / p_.temperature;
  for (size_t i = 0; i < V; ++i) l[i] *= inv_t;
  int32_t* idx = idx_.data();
  for (size_t i = 0; i < V; ++i) idx[i] = static_cast<int32_t>(i);
  auto by_logit = [l](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  size_t n = V;
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < V) {
    n = static_cast<size_t>(p_.top_k);
    std::nth_element(idx, idx + n, idx + V, by_logit);
  }
  const bool need_sorted = p_.top_p < 1.0f;
  if (need_sorted) std::sort(idx, idx + n, by_logit);
  float mx = l[idx[0]];
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, l[idx[i]]);
  // Infinite logits have no softmax: the first candidate of the largest logit (all -inf: any).
  if (!std::isfinite(mx))
    for (size_t i = 0; i < n; ++i)
      if (l[idx[i]] == mx) return {0, 0.0, idx[i]};
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float e = std::exp(l[idx[i]] - mx);
    l[idx[i]] = e;
    total += e;
  }
  if (need_sorted) {
    double cum = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += l[idx[i]];
      if (cum >= p_.top_p * total) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    total = cum;
  }
  return {n, total, -1};
}

int32_t Sampler::sample(const float* logits, const int32_t* history, size_t n_history) {
  const Candidates c = candidates(logits, history, n_history);
  if (c.n == 0) return c.chosen;
  const float* w = logits_.data();
  const int32_t* idx = idx_.data();
  const double u = uniform() * c.total;
  double acc = 0.0;
  for (size_t i = 0; i < c.n; ++i) {
    acc += w[idx[i]];
    if (u < acc) return idx[i];
  }
  return idx[c.n - 1];
}

void Sampler::probabilities(const float* logits, const int32_t* history, size_t n_history, float* probs) {
  const Candidates c = candidates(logits, history, n_history);
  std::fill(probs, probs + n_vocab_, 0.0f);
  if (c.n == 0) {
    probs[c.chosen] = 1.0f;
    return;
  }
  for (size_t i = 0; i < c.n; ++i) probs[idx_[i]] = static_cast<float>(logits_[idx_[i]] / c.total);
}

}  // namespace ember
