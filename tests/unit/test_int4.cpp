// int4 models (DType kI4): quantize_model's choices, the file round trip, the verifier's refusals of
// bad int4 tensors (each named), old dtypes unaffected, and an int4 model's logits against a float
// model holding exactly its dequantized weights (the only difference left: int8 activations).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "convert/writer.h"
#include "ember/convert.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/session.h"
#include "format/q4.h"
#include "model_specs.h"
#include "test_paths.h"

namespace {

ember::ModelConfig small_config(uint32_t n_embd = 64) {
  ember::ModelConfig c;
  c.n_vocab = 50;
  c.n_ctx = 32;
  c.n_embd = n_embd;
  c.n_head = 4;
  c.n_layer = 2;
  c.n_ff = 4 * n_embd;
  return c;
}

std::string tmp_path(const std::string& name) { return ember_test::temp_dir() + "/ember_test_int4_" + name; }

std::string load_error(const std::string& path) {
  auto m = ember::Model::load(path);
  return m.ok() ? "" : m.status().message();
}

bool is_linear_weight(const std::string& n) {
  return n.rfind("h.", 0) == 0 && n.find(".weight") != std::string::npos && n.find("ln_") == std::string::npos;
}

}  // namespace

TEST_CASE("quantize_model int4: linear weights int4 in groups, embedding as asked, the rest float") {
  for (ember::DType emb : {ember::DType::kI4, ember::DType::kI8}) {
    ember::ModelSpec s = ember_test::random_spec(small_config(), 1, 0.05f);
    ember::QuantizeOptions o;
    o.type = ember::DType::kI4;
    o.embedding_type = emb;
    o.group = 32;
    REQUIRE(ember::quantize_model(s, o).ok());
    for (const auto& t : s.tensors) {
      CAPTURE(t.name);
      if (is_linear_weight(t.name)) {
        CHECK(t.dtype == ember::DType::kI4);
        CHECK(t.group == 32);
        CHECK(t.data.size() == ember::i4_tensor_bytes(t.shape[0], t.shape[1], 32));
      } else if (t.name == "wte") {
        CHECK(t.dtype == emb);
      } else {
        CHECK(t.dtype == ember::DType::kF32);
      }
    }
    CHECK(s.validate().ok());
    // Quantizing again to the same types changes nothing; to int8 dequantizes and requantizes.
    std::vector<std::vector<uint8_t>> before;
    for (const auto& t : s.tensors) before.push_back(t.data);
    REQUIRE(ember::quantize_model(s, o).ok());
    for (size_t i = 0; i < s.tensors.size(); ++i) CHECK(s.tensors[i].data == before[i]);
    REQUIRE(ember::quantize_model(s, {}).ok());
    for (const auto& t : s.tensors)
      if (is_linear_weight(t.name) || t.name == "wte") CHECK(t.dtype == ember::DType::kI8);
  }
  // Refusals, each naming the problem.
  {
    ember::ModelSpec s = ember_test::random_spec(small_config(48), 1, 0.05f);
    ember::QuantizeOptions o;
    o.type = o.embedding_type = ember::DType::kI4;
    o.group = 32;  // does not divide 48
    const ember::Status st = ember::quantize_model(s, o);
    CHECK(!st.ok());
    CHECK(st.message().find("does not divide") != std::string::npos);
    o.group = 16;
    CHECK(ember::quantize_model(s, o).ok());
  }
  {
    ember::ModelSpec s = ember_test::random_spec(small_config(), 1, 0.05f);
    ember::QuantizeOptions o;
    o.type = ember::DType::kI4;
    o.group = 24;
    CHECK(ember::quantize_model(s, o).message().find("multiple of 16") != std::string::npos);
    o.group = 32;
    o.type = ember::DType::kF16;
    CHECK(ember::quantize_model(s, o).message().find("not a quantized type") != std::string::npos);
  }
}

TEST_CASE("int4 file: round trip keeps every byte and group; the model loads and runs") {
  ember::ModelSpec s = ember_test::random_spec(small_config(), 2, 0.05f);
  ember::QuantizeOptions o;
  o.type = o.embedding_type = ember::DType::kI4;
  o.group = 64;
  REQUIRE(ember::quantize_model(s, o).ok());
  const std::string p = tmp_path("rt.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  auto back = ember::read_model_file(p);
  REQUIRE(back.ok());
  REQUIRE(back->tensors.size() == s.tensors.size());
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    CAPTURE(s.tensors[i].name);
    CHECK(back->tensors[i].dtype == s.tensors[i].dtype);
    CHECK(back->tensors[i].group == s.tensors[i].group);
    CHECK(back->tensors[i].data == s.tensors[i].data);
  }
  auto m = ember::Model::load(p);
  REQUIRE(m.ok());
  bool saw = false;
  for (const auto& t : (*m)->tensors()) saw = saw || (t.name == "h.0.mlp.c_fc.weight" && t.dtype == ember::DType::kI4);
  CHECK(saw);
  auto sess = ember::Session::create(*m, {});
  REQUIRE(sess.ok());
  const int32_t toks[] = {1, 2, 3, 4, 5};
  REQUIRE((*sess)->prefill(toks, 5).ok());
  for (size_t v = 0; v < 50; ++v) REQUIRE(std::isfinite((*sess)->logits()[v]));
  std::remove(p.c_str());
}

TEST_CASE("int4 file: the verifier names every bad int4 tensor") {
  const std::string p = tmp_path("bad.ember");
  auto good = [] {
    ember::ModelSpec s = ember_test::random_spec(small_config(), 3, 0.05f);
    ember::QuantizeOptions o;
    o.type = o.embedding_type = ember::DType::kI4;
    o.group = 32;
    REQUIRE(ember::quantize_model(s, o).ok());
    return s;
  };
  auto find = [](ember::ModelSpec& s, const std::string& n) -> ember::TensorData& {
    for (auto& t : s.tensors)
      if (t.name == n) return t;
    throw std::runtime_error("no tensor " + n);
  };
  struct Case {
    const char* what;
    void (*mutate)(ember::TensorData&);
    const char* expect;
  };
  const Case cases[] = {
      {"group 0", [](ember::TensorData& t) { t.group = 0; }, "group_size 0"},
      {"group 24", [](ember::TensorData& t) { t.group = 24; }, "not a positive multiple of 16"},
      {"group 48 of 64", [](ember::TensorData& t) { t.group = 48; }, "does not divide"},
      {"bytes short", [](ember::TensorData& t) { t.data.resize(t.data.size() - 2); }, "does not match"},
      {"negative scale", [](ember::TensorData& t) { t.data[t.data.size() - 1] |= 0x80; }, "not a finite non-negative"},
      {"inf scale",
       [](ember::TensorData& t) {
         t.data[t.data.size() - 2] = 0x00;
         t.data[t.data.size() - 1] = 0x7c;
       },
       "not a finite non-negative"},
      {"NaN scale",
       [](ember::TensorData& t) {
         t.data[t.data.size() - 2] = 0x01;
         t.data[t.data.size() - 1] = 0x7e;
       },
       "not a finite non-negative"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    ember::ModelSpec s = good();
    c.mutate(find(s, "h.1.mlp.c_proj.weight"));
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    const std::string e = load_error(p);
    CHECK(e.find("h.1.mlp.c_proj.weight") != std::string::npos);
    CHECK(e.find(c.expect) != std::string::npos);
    CHECK(!ember::read_model_file(p).ok());
  }
  {  // int4 on a vector, and a group size on a float tensor
    ember::ModelSpec s = good();
    ember::TensorData& ln = find(s, "h.0.ln_1.weight");
    ln.dtype = ember::DType::kI4;
    ln.group = 32;
    ln.data.assign(64, 0);
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("must be a matrix") != std::string::npos);
    s = good();
    find(s, "wpe").group = 32;
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("group_size given for a f32 tensor") != std::string::npos);
  }
  std::remove(p.c_str());
}

TEST_CASE("int4 model = float model of its dequantized weights, up to int8 activations") {
  // Build the int4 model, then a float model whose linear weights and embedding are exactly the int4
  // values (decode_i4_f32): the two differ only by the runtime's per-token int8 activations, so their
  // logits agree closely; a wrong nibble, scale or group order would move them by far more.
  ember::ModelSpec q = ember_test::random_spec(small_config(), 4, 0.08f);
  ember::QuantizeOptions o;
  o.type = o.embedding_type = ember::DType::kI4;
  o.group = 32;
  REQUIRE(ember::quantize_model(q, o).ok());
  ember::ModelSpec f = ember_test::random_spec(small_config(), 4, 0.08f);
  REQUIRE(ember::quantize_model(f, o).ok());
  for (auto& t : f.tensors) {
    if (t.dtype != ember::DType::kI4) continue;
    const std::vector<float> v = ember::tensor_values(t);
    t.dtype = ember::DType::kF32;
    t.group = 0;
    t.data.resize(v.size() * 4);
    std::memcpy(t.data.data(), v.data(), v.size() * 4);
  }
  auto mq = ember::load_model_spec(q, "int4");
  auto mf = ember::load_model_spec(f, "dequantized f32");
  REQUIRE((mq.ok() && mf.ok()));
  for (uint32_t threads : {1u, 2u}) {
    ember::SessionOptions so;
    so.n_threads = threads;
    auto sq = ember::Session::create(*mq, so), sf = ember::Session::create(*mf, so);
    REQUIRE((sq.ok() && sf.ok()));
    std::mt19937 rng(5);
    std::vector<int32_t> toks(20);
    for (auto& t : toks) t = static_cast<int32_t>(rng() % 50);
    REQUIRE((*sq)->prefill(toks.data(), 12).ok());
    REQUIRE((*sf)->prefill(toks.data(), 12).ok());
    double err2 = 0, ref2 = 0;
    for (size_t i = 12; i < toks.size(); ++i) {
      const float *a = (*sf)->logits(), *b = (*sq)->logits();
      for (size_t v = 0; v < 50; ++v) {
        err2 += static_cast<double>(a[v] - b[v]) * (a[v] - b[v]);
        ref2 += static_cast<double>(a[v]) * a[v];
      }
      REQUIRE((*sq)->decode(toks[i]).ok());
      REQUIRE((*sf)->decode(toks[i]).ok());
    }
    const double rel = std::sqrt(err2 / ref2);
    MESSAGE(threads << " threads: rms logit error / rms logit, int4 vs its dequantized f32 model: " << rel);
    CHECK(rel < 0.03);  // int8 activations alone; measured 0.0075
    CHECK(rel > 0.0);   // and not the float path itself
  }
}

TEST_CASE("gptq_quantize_q4: a smaller output error on its calibration inputs than rounding to nearest") {
  // Correlated inputs (a few strong directions, as real activations have): GPTQ's error compensation
  // must beat round-to-nearest on ||X (W - Wq)^T||, with values in [-8, 7] and valid scales.
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // in 160: the factorization's blocks of 64 columns, a partial last one, and work split over threads.
  for (size_t in : {64, 160}) {
    CAPTURE(in);
    const size_t out = 24, n = 512, group = 16;
    std::vector<float> mix(8 * in), X(n * in), W(out * in);
    for (float& v : mix) v = nd(rng);
    for (size_t t = 0; t < n; ++t) {
      float z[8];
      for (float& v : z) v = nd(rng);
      for (size_t i = 0; i < in; ++i) {
        float s = 0.1f * nd(rng);
        for (size_t k = 0; k < 8; ++k) s += z[k] * mix[k * in + i];
        X[t * in + i] = s;
      }
    }
    for (float& v : W) v = 0.05f * nd(rng);
    std::vector<double> H(in * in, 0.0);
    for (size_t t = 0; t < n; ++t)
      for (size_t i = 0; i < in; ++i)
        for (size_t j = 0; j < in; ++j) H[i * in + j] += static_cast<double>(X[t * in + i]) * X[t * in + j];
    auto out_err = [&](const std::vector<int8_t>& q, const std::vector<uint16_t>& s) {
      double e = 0.0;
      for (size_t t = 0; t < n; ++t)
        for (size_t o = 0; o < out; ++o) {
          double d = 0.0;
          for (size_t i = 0; i < in; ++i)
            d += X[t * in + i] * (W[o * in + i] - ember::f16_to_f32(s[o * (in / group) + i / group]) * q[o * in + i]);
          e += d * d;
        }
      return e;
    };
    std::vector<int8_t> qr(out * in), qg(out * in);
    std::vector<uint16_t> sr(out * in / group), sg(out * in / group);
    ember::quantize_rows_q4(W.data(), out, in, group, qr.data(), sr.data());
    std::vector<int8_t> q1;
    for (uint32_t threads : {1u, 2u}) {
      REQUIRE(ember::gptq_quantize_q4(W.data(), out, in, group, H.data(), qg.data(), sg.data(), threads).ok());
      if (threads == 1) q1 = qg;
      CHECK(qg == q1);  // the same values at any thread count
      for (int8_t v : qg) REQUIRE((v >= -8 && v <= 7));
      CHECK(sg == sr);  // static groups: the scales of rounding to nearest
      const double er = out_err(qr, sr), eg = out_err(qg, sg);
      MESSAGE(threads << " threads: output error, round to nearest " << er << ", GPTQ " << eg);
      CHECK(eg < 0.8 * er);
    }
  }
  // A group that does not divide the rows is refused before anything is read.
  std::vector<float> w(24 * 64, 0.0f);
  std::vector<double> h(64 * 64, 0.0);
  std::vector<int8_t> q(24 * 64);
  std::vector<uint16_t> sc(24 * 64);
  CHECK(!ember::gptq_quantize_q4(w.data(), 24, 64, 24, h.data(), q.data(), sc.data(), 1).ok());
}
