// ember/sampler.h - choosing the next token from logits.
//
//   ember::SamplerParams p;  p.temperature = 0.8f;  p.top_k = 40;  p.seed = 42;
//   auto sampler = ember::Sampler::create(p, model->config().n_vocab);
//   int32_t next = sampler->sample(session->logits(), history.data(), history.size());
//
// Order: repetition penalty (over the last repeat_last_n history tokens, each token once: positive
// logits divided by the penalty, negative ones multiplied), then temperature <= 0 means greedy
// (argmax, lowest id on ties); otherwise logits / temperature, top-k, softmax, top-p (smallest set
// whose probability reaches top_p), and a draw from a xoshiro256** generator seeded by `seed`, so a
// seed reproduces a run on every platform. History ids outside [0, n_vocab) are ignored. Ties between
// equal logits go to the lower id (top-k keeps the lower ids; top-p counts them first).
// probabilities() gives the distribution sample() draws from, for tests and tools that show it.
// sample() and probabilities() do not allocate.
// Thread safety: a Sampler is not thread-safe (it owns its RNG state and buffers): one per thread.
// Non-finite logits (a broken model): NaN is never chosen; when the largest logit is +inf (or every
// logit is -inf or NaN) sample() returns the first candidate holding it, without drawing. The result is
// always in [0, n_vocab).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ember/export.h"
#include "ember/status.h"

namespace ember {

struct SamplerParams {
  float temperature = 0.8f;   // <= 0: greedy
  int32_t top_k = 40;         // <= 0: no limit
  float top_p = 0.95f;        // in (0, 1]; 1: no limit
  float repeat_penalty = 1.0f;  // >= 1 typical; 1: off
  int32_t repeat_last_n = 64;   // history window for the penalty; < 0: whole history
  uint64_t seed = 0;
};

class EMBER_API Sampler {
 public:
  // Fails with a message naming the parameter when it is out of range (NaN, top_p outside (0, 1],
  // repeat_penalty <= 0) or n_vocab == 0.
  static Result<Sampler> create(const SamplerParams& params, size_t n_vocab);
  // The next token: logits (n_vocab), history (n_history ids, oldest first; nullptr when 0).
  int32_t sample(const float* logits, const int32_t* history, size_t n_history);
  // The distribution the next sample() with the same arguments draws from: writes n_vocab floats to
  // probs, probs[i] = the probability of token i, 0 outside the candidates left by top-k and top-p.
  // Greedy (temperature <= 0) and the no-draw cases above give 1 for the token sample() returns. Uses
  // sample()'s own code (every step but the draw); the generator is left unchanged.
  void probabilities(const float* logits, const int32_t* history, size_t n_history, float* probs);
  const SamplerParams& params() const { return p_; }

 private:
  Sampler() = default;
  // Every step but the draw: idx_[0, n) are the candidates in draw order and logits_[idx_[i]] their
  // unnormalised weights, summing to total; n == 0 means there is nothing to draw: `chosen` is the token.
  struct Candidates {
    size_t n;
    double total;
    int32_t chosen;
  };
  Candidates candidates(const float* logits, const int32_t* history, size_t n_history);
  double uniform();  // [0, 1)
  SamplerParams p_;
  size_t n_vocab_ = 0;
  uint64_t s_[4] = {};
  std::vector<float> logits_;
  std::vector<int32_t> idx_;
  std::vector<uint32_t> seen_;
  uint32_t stamp_ = 0;
};

}  // namespace ember
