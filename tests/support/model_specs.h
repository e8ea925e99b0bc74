// A float ModelSpec with every tensor `config` requires, filled with N(0, stddev) draws from one
// mt19937(seed) stream in required_tensors order (zeros when stddev is 0), for tests that write models.
#pragma once

#include <cstring>
#include <random>
#include <vector>

#include "ember/convert.h"

namespace ember_test {

inline ember::ModelSpec random_spec(const ember::ModelConfig& config, uint32_t seed, float stddev) {
  ember::ModelSpec s;
  s.config = config;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, stddev > 0 ? stddev : 1.0f);
  for (const auto& r : ember::required_tensors(config)) {
    ember::TensorData t;
    t.name = r.name;
    t.shape = r.shape;
    uint64_t n = 1;
    for (uint64_t d : r.shape) n *= d;
    std::vector<float> v(n, 0.0f);
    if (stddev > 0)
      for (float& x : v) x = nd(rng);
    t.data.resize(n * 4);
    std::memcpy(t.data.data(), v.data(), n * 4);
    s.tensors.push_back(std::move(t));
  }
  return s;
}

}  // namespace ember_test
