// The .ember file: round trip, alignment, and untrusted-file handling (truncation, corruption,
// wrong identifier, missing or misshapen tensors, bad scales). Every bad file must give a clear
// error and never a crash (this suite also runs under ASan + UBSan).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "convert/writer.h"
#include "ember/convert.h"
#include "ember/model.h"
#include "ember/session.h"
#include "ember_generated.h"
#include "format/ember_file.h"
#include "test_paths.h"

namespace {

ember::TensorData f32_tensor(const std::string& name, std::vector<uint64_t> shape, std::mt19937& rng) {
  ember::TensorData t;
  t.name = name;
  t.shape = std::move(shape);
  uint64_t n = 1;
  for (auto d : t.shape) n *= d;
  std::normal_distribution<float> nd(0.0f, 0.2f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  t.data.resize(n * 4);
  std::memcpy(t.data.data(), v.data(), n * 4);
  return t;
}

ember::ModelSpec tiny_spec(ember::NormPlacement norm = ember::NormPlacement::kPreLN) {
  ember::ModelSpec s;
  ember::ModelConfig& c = s.config;
  c.n_vocab = 11;
  c.n_ctx = 8;
  c.n_embd = 8;
  c.n_head = 2;
  c.n_layer = 2;
  c.n_ff = 16;
  c.norm = norm;
  std::mt19937 rng(7);
  for (const auto& r : ember::required_tensors(c)) s.tensors.push_back(f32_tensor(r.name, r.shape, rng));
  std::vector<std::string> syms;
  for (char ch : std::string("\n abcdefghi")) syms.push_back(std::string(1, ch));
  auto tok = ember::Tokenizer::chars(syms);
  REQUIRE(tok.ok());
  s.tokenizer = std::move(tok).value();
  s.metadata["source"] = "test";
  return s;
}

std::string tmp_path(const std::string& name) { return ember_test::temp_dir() + "/ember_test_format_" + name; }

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_all(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Loads `path` with the full loader; returns the error message ("" if it loaded).
std::string load_error(const std::string& path) {
  auto m = ember::Model::load(path);
  return m.ok() ? "" : m.status().message();
}

}  // namespace

TEST_CASE("format: write then read gives the same config, tokenizer, metadata and 64-byte aligned tensors") {
  const ember::ModelSpec spec = tiny_spec();
  const std::string p = tmp_path("roundtrip.ember");
  REQUIRE(ember::write_model_file(spec, p).ok());
  auto f = ember::EmberFile::open(p);
  REQUIRE_MESSAGE(f.ok(), f.status().message());
  CHECK((*f)->format_version() == ember::kFormatVersion);
  CHECK((*f)->config().n_vocab == 11);
  CHECK((*f)->config().n_ff == 16);
  CHECK((*f)->metadata().at("source") == "test");
  REQUIRE((*f)->tensors().size() == spec.tensors.size());
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const auto& v = (*f)->tensors()[i];
    CHECK(v.name == spec.tensors[i].name);
    CHECK(reinterpret_cast<uintptr_t>(v.data) % 64 == 0);
    REQUIRE(v.size == spec.tensors[i].data.size());
    CHECK(std::memcmp(v.data, spec.tensors[i].data.data(), v.size) == 0);
  }
  auto back = ember::read_model_file(p);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->tokenizer.kind() == ember::TokenizerKind::kChars);
  CHECK(back->tokenizer.tokens() == spec.tokenizer.tokens());
  auto m = ember::Model::load(p);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  CHECK((*m)->tokenizer().encode("abc").value() == std::vector<int32_t>{2, 3, 4});
  std::remove(p.c_str());
}

TEST_CASE("format: the writer leaves no file behind when it refuses a spec") {
  ember::ModelSpec spec = tiny_spec();
  spec.tensors.pop_back();
  const std::string p = tmp_path("refused.ember");
  std::remove(p.c_str());
  ember::Status st = ember::write_model_file(spec, p);
  CHECK_FALSE(st.ok());
  CHECK_FALSE(ember_test::exists(p));
}

TEST_CASE("format: every truncation of a valid file is rejected cleanly") {
  const std::string p = tmp_path("full.ember"), q = tmp_path("truncated.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  const std::string bytes = read_all(p);
  size_t n_checked = 0;
  for (size_t len = 0; len < bytes.size(); len += (len < 2048 ? 7 : 97)) {
    write_all(q, bytes.substr(0, len));
    const std::string err = load_error(q);
    CAPTURE(len);
    CHECK_FALSE(err.empty());
    ++n_checked;
  }
  CHECK(n_checked > 50);
  write_all(q, bytes.substr(0, bytes.size() - 1));
  CHECK(load_error(q).find("outside") != std::string::npos);
  std::remove(p.c_str());
  std::remove(q.c_str());
}

TEST_CASE("format: wrong file identifier and foreign files") {
  const std::string p = tmp_path("ident.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  std::string bytes = read_all(p);
  bytes[8] = 'X';
  write_all(p, bytes);
  CHECK(load_error(p).find("not an ember model") != std::string::npos);
  write_all(p, std::string(4096, '\0'));
  CHECK_FALSE(load_error(p).empty());
  write_all(p, "#!/bin/sh\necho this is not a model\n");
  CHECK(load_error(p).find("not an ember model") != std::string::npos);
  CHECK(load_error(tmp_path("does-not-exist.ember")).find("no such file") != std::string::npos);
  std::remove(p.c_str());
}

TEST_CASE("format: corrupted header bytes never crash the loader") {
  const std::string p = tmp_path("corrupt_src.ember"), q = tmp_path("corrupt.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  const std::string bytes = read_all(p);
  uint32_t fb_size;
  std::memcpy(&fb_size, bytes.data(), 4);
  size_t rejected = 0, n = 0;
  for (size_t i = 0; i < 4 + fb_size; i += 3) {
    for (unsigned char x : {0xffu, 0x80u, 0x01u}) {
      std::string b = bytes;
      b[i] = static_cast<char>(b[i] ^ x);
      write_all(q, b);
      auto m = ember::Model::load(q);
      if (!m.ok()) {
        CHECK_FALSE(m.status().message().empty());
        ++rejected;
      } else {
        // A flip the verifier cannot see (e.g. inside a float) must still give a working model.
        auto s = ember::Session::create(*m, {});
        REQUIRE(s.ok());
        int32_t t = 1;
        (void)(*s)->prefill(&t, 1);
      }
      ++n;
    }
  }
  MESSAGE(rejected << " of " << n << " corrupted headers rejected");
  CHECK(rejected > n / 4);
  std::remove(p.c_str());
  std::remove(q.c_str());
}

TEST_CASE("format: missing tensor, wrong shape, bad scales and bad config are named") {
  const std::string p = tmp_path("bad.ember");
  {
    ember::ModelSpec s = tiny_spec();
    s.tensors.erase(s.tensors.begin() + 5);  // h.0.attn.c_attn.bias
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("tensor 'h.0.attn.c_attn.bias' is missing") != std::string::npos);
  }
  {
    ember::ModelSpec s = tiny_spec();
    for (auto& t : s.tensors)
      if (t.name == "h.1.mlp.c_fc.weight") {
        t.shape = {8, 16};  // transposed
      }
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    const std::string e = load_error(p);
    CHECK(e.find("h.1.mlp.c_fc.weight") != std::string::npos);
    CHECK(e.find("expected [16, 8]") != std::string::npos);
  }
  {
    ember::ModelSpec s = tiny_spec();
    s.tensors[0].data.resize(s.tensors[0].data.size() - 4);  // size disagrees with shape
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("'wte'") != std::string::npos);
  }
  {
    ember::ModelSpec s = tiny_spec();
    ember::TensorData& t = s.tensors[2];  // h.0.ln_1.weight -> make an int8 tensor with a NaN scale
    t.dtype = ember::DType::kI8;
    t.data.assign(8, 1);
    t.scales.assign(8, 0.1f);
    t.scales[3] = std::nanf("");
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("scale 3") != std::string::npos);
  }
  {
    ember::ModelSpec s = tiny_spec();
    s.config.n_head = 3;  // 8 % 3 != 0
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("n_head") != std::string::npos);
  }
  {
    ember::ModelSpec s = tiny_spec();
    s.tensors.push_back(s.tensors[0]);
    s.tensors.back().name = "extra";
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    CHECK(load_error(p).find("unexpected tensor 'extra'") != std::string::npos);
  }
  std::remove(p.c_str());
}

namespace {

// The bytes of `s` as write_model_file lays them out (size-prefixed FlatBuffer, zeros to 64 bytes, each
// tensor's data at its offset from there), except that tensor `which` starts `shift` bytes after its
// 64-byte boundary; no tokenizer. Built here from the schema, not by the writer, so a test can break the
// one rule it is about.
std::string file_with_shifted_tensor(const ember::ModelSpec& s, size_t which, uint64_t shift) {
  namespace fb = ember::fb;
  flatbuffers::FlatBufferBuilder b;
  const ember::ModelConfig& c = s.config;
  auto cfg = fb::CreateConfig(b, c.n_vocab, c.n_ctx, c.n_embd, c.n_head, c.n_layer, c.n_ff, c.norm_eps,
                              static_cast<fb::NormPlacement>(c.norm), static_cast<fb::Activation>(c.activation),
                              c.tied_lm_head, c.n_classes);
  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  std::vector<uint64_t> at;
  uint64_t end = 0;
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const ember::TensorData& t = s.tensors[i];
    at.push_back(ember::align_up(end) + (i == which ? shift : 0));
    tensors.push_back(fb::CreateTensor(b, b.CreateString(t.name), b.CreateVector(t.shape), static_cast<fb::DType>(t.dtype),
                                       at.back(), t.data.size()));
    end = at.back() + t.data.size();
  }
  b.FinishSizePrefixed(fb::CreateModel(b, ember::kFormatVersion, cfg, 0, b.CreateVector(tensors)), ember::kFileIdentifier);
  std::string bytes(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  bytes.resize(ember::align_up(bytes.size()), '\0');
  const size_t data_start = bytes.size();
  bytes.resize(data_start + ember::align_up(end), '\0');
  for (size_t i = 0; i < s.tensors.size(); ++i)
    std::memcpy(&bytes[data_start + at[i]], s.tensors[i].data.data(), s.tensors[i].data.size());
  return bytes;
}

}  // namespace

TEST_CASE("format: tensor data must start on a 64-byte boundary (4, 16, 32 and 48 bytes past one are refused)") {
  const ember::ModelSpec s = tiny_spec();
  const std::string p = tmp_path("shifted.ember");
  write_all(p, file_with_shifted_tensor(s, 3, 0));  // the same layout, aligned: it loads
  REQUIRE(load_error(p) == "");
  for (uint64_t shift : {4u, 16u, 32u, 48u}) {
    CAPTURE(shift);
    write_all(p, file_with_shifted_tensor(s, 3, shift));
    CHECK(load_error(p).find("tensor '" + s.tensors[3].name + "': data offset is not 64-byte aligned") != std::string::npos);
  }
  std::remove(p.c_str());
}

TEST_CASE("format: int8 and f16 tensors load as their dequantized values") {
  ember::ModelSpec s = tiny_spec(ember::NormPlacement::kPostLN);
  const std::string p = tmp_path("dtypes.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  auto m32 = ember::Model::load(p);
  REQUIRE(m32.ok());
  // The same weights with c_fc in f16 and c_proj in int8 must give close logits.
  for (auto& t : s.tensors) {
    if (t.name == "h.0.mlp.c_fc.weight") {
      std::vector<uint8_t> h(t.data.size() / 2);
      for (size_t i = 0; i < h.size() / 2; ++i) {
        float f;
        std::memcpy(&f, &t.data[4 * i], 4);
        uint16_t x = ember::f32_to_f16(f);
        std::memcpy(&h[2 * i], &x, 2);
      }
      t.data = h;
      t.dtype = ember::DType::kF16;
    } else if (t.name == "h.1.mlp.c_proj.weight") {
      const size_t rows = t.shape[0], cols = t.shape[1];
      std::vector<uint8_t> q(rows * cols);
      t.scales.resize(rows);
      for (size_t r = 0; r < rows; ++r) {
        float mx = 0;
        for (size_t c = 0; c < cols; ++c) {
          float f;
          std::memcpy(&f, &t.data[4 * (r * cols + c)], 4);
          mx = std::max(mx, std::fabs(f));
        }
        t.scales[r] = mx / 127.0f;
        for (size_t c = 0; c < cols; ++c) {
          float f;
          std::memcpy(&f, &t.data[4 * (r * cols + c)], 4);
          q[r * cols + c] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(f / t.scales[r])));
        }
      }
      t.data = q;
      t.dtype = ember::DType::kI8;
    }
  }
  REQUIRE(ember::write_model_file(s, p).ok());
  auto mq = ember::Model::load(p);
  REQUIRE_MESSAGE(mq.ok(), mq.status().message());
  auto s1 = ember::Session::create(*m32, {});
  auto s2 = ember::Session::create(*mq, {});
  REQUIRE((s1.ok() && s2.ok()));
  const int32_t toks[] = {1, 2, 3, 4};
  REQUIRE((*s1)->prefill(toks, 4).ok());
  REQUIRE((*s2)->prefill(toks, 4).ok());
  float max_diff = 0, max_abs = 0;
  for (size_t v = 0; v < 11; ++v) {
    max_diff = std::max(max_diff, std::fabs((*s1)->logits()[v] - (*s2)->logits()[v]));
    max_abs = std::max(max_abs, std::fabs((*s1)->logits()[v]));
  }
  CHECK(max_diff > 0.0f);            // the file really changed
  CHECK(max_diff < 0.02f * max_abs);  // and still describes the same model
  std::remove(p.c_str());
}

TEST_CASE("format: a GPT-2 BPE tokenizer survives the file round trip") {
  const std::string dir = ember_test::data_dir() + "/gpt2";
  auto tok = ember::load_gpt2_tokenizer(dir + "/encoder.json", dir + "/vocab.bpe");
  REQUIRE_MESSAGE(tok.ok(), tok.status().message());
  ember::ModelSpec s;
  s.config.n_vocab = 50257;
  s.config.n_ctx = 4;
  s.config.n_embd = 4;
  s.config.n_head = 1;
  s.config.n_layer = 1;
  s.config.n_ff = 4;
  std::mt19937 rng(3);
  for (const auto& r : ember::required_tensors(s.config)) s.tensors.push_back(f32_tensor(r.name, r.shape, rng));
  s.tokenizer = std::move(tok).value();
  const std::string p = tmp_path("bpe.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  const ember::Tokenizer& t = (*m)->tokenizer();
  CHECK(t.kind() == ember::TokenizerKind::kGpt2Bpe);
  CHECK(t.eot_id() == 50256);
  CHECK(t.merges().size() == 50000);
  CHECK(t.encode("Hello world").value() == std::vector<int32_t>{15496, 995});
  CHECK(t.encode(" First Citizen:\n").value() == s.tokenizer.encode(" First Citizen:\n").value());
  std::remove(p.c_str());
}
