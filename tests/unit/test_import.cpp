// Importer tests: f16/bf16 conversion, the safetensors reader on hostile files, the three namings,
// config/tensor errors, ModelSpec::validate, and the committed golden checkpoints.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/test_paths.h"
#include "convert/safetensors.h"
#include "ember/convert.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using ember::StatusCode;

namespace {

// ---- helpers -------------------------------------------------------------------------------------

struct TmpDir {
  fs::path path;
  TmpDir() {
    std::string tmpl = ember_test::temp_dir() + "/ember_import_XXXXXX";
    char* p = mkdtemp(tmpl.data());
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());  // test hosts are little-endian
  return s;
}
std::string u16_bytes(const std::vector<uint16_t>& v) {
  std::string s(v.size() * 2, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
std::vector<float> floats_of(const ember::TensorData& t) {
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), v.size() * 4);
  return v;
}

uint64_t numel(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

struct StTensor {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::string bytes;
};

// The raw safetensors container: 8-byte LE header size, header, data.
std::string container(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string safetensors(const std::vector<StTensor>& ts, const json& metadata = json()) {
  json h = json::object();
  if (!metadata.is_null()) h["__metadata__"] = metadata;
  std::string data;
  for (const StTensor& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  return container(h.dump(), data);
}

// A small checkpoint in one of the three source namings. Every source tensor gets distinct values
// (tensor number * 1000 + element index) so a mix-up or a missing transpose shows up.
enum class Src { kHfGpt2, kOpenai, kNano };

struct Checkpoint {
  Src src;
  uint32_t V = 7, T = 5, C = 4, H = 2, L = 2, F = 8;
  std::vector<StTensor> tensors;
  std::map<std::string, std::vector<float>> values;  // by source key
  json config;

  void add(const std::string& key, std::vector<uint64_t> shape) {
    std::vector<float> v(numel(shape));
    const float base = 1000.0f * static_cast<float>(values.size() + 1);
    for (size_t i = 0; i < v.size(); ++i) v[i] = base + static_cast<float>(i);
    tensors.push_back({key, "F32", shape, f32_bytes(v)});
    values[key] = std::move(v);
  }
  void remove(const std::string& key) {
    for (size_t i = 0; i < tensors.size(); ++i)
      if (tensors[i].name == key) tensors.erase(tensors.begin() + static_cast<long>(i));
    values.erase(key);
  }
  StTensor* find(const std::string& key) {
    for (auto& t : tensors)
      if (t.name == key) return &t;
    return nullptr;
  }
  void write(const TmpDir& dir, const std::string& file = "model.safetensors") const {
    write_file(dir / file, safetensors(tensors));
    write_file(dir / "config.json", config.dump(2));
  }
};

// prefix: "transformer." or "" (or "_orig_mod.transformer." for nanoGPT).
Checkpoint make_checkpoint(Src src, const std::string& prefix, bool bias = true, bool with_buffers = true) {
  Checkpoint c;
  c.src = src;
  if (src != Src::kHfGpt2) c.F = 4 * c.C;
  const uint64_t V = c.V, T = c.T, C = c.C, F = c.F;
  const bool conv1d = src != Src::kNano;
  auto lin = [&](const std::string& k, uint64_t out, uint64_t in) {
    c.add(k + ".weight", conv1d ? std::vector<uint64_t>{in, out} : std::vector<uint64_t>{out, in});
    if (bias) c.add(k + ".bias", {out});
  };
  auto ln = [&](const std::string& k) {
    c.add(k + ".weight", {C});
    if (bias) c.add(k + ".bias", {C});
  };
  c.add(prefix + (src == Src::kOpenai ? "tokens_embed.weight" : "wte.weight"), {V, C});
  c.add(prefix + (src == Src::kOpenai ? "positions_embed.weight" : "wpe.weight"), {T, C});
  for (uint32_t i = 0; i < c.L; ++i) {
    const std::string h = prefix + "h." + std::to_string(i) + ".";
    ln(h + "ln_1");
    lin(h + "attn.c_attn", 3 * C, C);
    lin(h + "attn.c_proj", C, C);
    ln(h + "ln_2");
    lin(h + "mlp.c_fc", F, C);
    lin(h + "mlp.c_proj", C, F);
    if (with_buffers && src != Src::kNano) {
      std::vector<float> mask(T * T, 1.0f);
      c.tensors.push_back({h + "attn.bias", "F32", {1, 1, T, T}, f32_bytes(mask)});
      if (src == Src::kHfGpt2) c.tensors.push_back({h + "attn.masked_bias", "F32", {}, f32_bytes({-1e4f})});
    }
  }
  if (src != Src::kOpenai) ln(prefix + "ln_f");
  switch (src) {
    case Src::kHfGpt2:
      c.config = {{"model_type", "gpt2"}, {"vocab_size", c.V}, {"n_positions", c.T}, {"n_embd", c.C},
                  {"n_head", c.H}, {"n_layer", c.L}, {"n_inner", c.F}, {"activation_function", "gelu_new"},
                  {"layer_norm_epsilon", 1e-5}};
      break;
    case Src::kOpenai:
      c.config = {{"model_type", "openai-gpt"}, {"vocab_size", c.V}, {"n_positions", c.T}, {"n_embd", c.C},
                  {"n_head", c.H}, {"n_layer", c.L}, {"afn", "gelu"}, {"layer_norm_epsilon", 1e-5}};
      break;
    case Src::kNano:
      c.config = {{"n_layer", c.L}, {"n_head", c.H}, {"n_embd", c.C}, {"block_size", c.T},
                  {"bias", bias}, {"vocab_size", c.V}, {"dropout", 0.0}};
      break;
  }
  return c;
}

// Checks canonical tensor `canon` against source `key`, transposed from [in, out] if `transposed`.
void expect_tensor(const ember::ModelSpec& spec, const std::string& canon, const std::vector<float>& src,
                   bool transposed) {
  const ember::TensorData* t = spec.find(canon);
  REQUIRE_MESSAGE(t != nullptr, canon);
  CHECK(t->dtype == ember::DType::kF32);
  const std::vector<float> v = floats_of(*t);
  REQUIRE(v.size() == src.size());
  if (!transposed) {
    CHECK_MESSAGE(v == src, canon);
    return;
  }
  const size_t rows = t->shape[0], cols = t->shape[1];  // [out, in]; source is [in, out]
  size_t bad = 0;
  for (size_t o = 0; o < rows; ++o)
    for (size_t i = 0; i < cols; ++i) bad += v[o * cols + i] != src[i * rows + o];
  CHECK_MESSAGE(bad == 0, canon);
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Imports `path` and expects failure with `code` and every part in the message.
void expect_error(const std::string& path, StatusCode code, std::vector<std::string> parts) {
  ember::Result<ember::ModelSpec> r = ember::import_model(path);
  REQUIRE_FALSE(r.ok());
  const std::string& m = r.status().message();
  CHECK_MESSAGE(r.status().code() == code, m);
  for (const auto& p : parts) CHECK_MESSAGE(contains(m, p), "'" << p << "' not in: " << m);
}

ember::Status open_status(const std::string& bytes) {
  TmpDir d;
  write_file(d / "x.safetensors", bytes);
  return ember::SafetensorsFile::open(d / "x.safetensors").status();
}

void expect_open_error(const std::string& bytes, std::vector<std::string> parts,
                       StatusCode code = StatusCode::kInvalidFile) {
  const ember::Status s = open_status(bytes);
  REQUIRE_FALSE(s.ok());
  CHECK_MESSAGE(s.code() == code, s.message());
  CHECK_MESSAGE(contains(s.message(), "x.safetensors"), s.message());
  for (const auto& p : parts) CHECK_MESSAGE(contains(s.message(), p), "'" << p << "' not in: " << s.message());
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

// ---- f16 / bf16 ------------------------------------------------------------------------------------

TEST_CASE("f16_to_f32 exact values") {
  CHECK(ember::f16_to_f32(0x3c00) == 1.0f);
  CHECK(ember::f16_to_f32(0xc000) == -2.0f);
  CHECK(ember::f16_to_f32(0x3555) == 0.333251953125f);
  CHECK(ember::f16_to_f32(0x7bff) == 65504.0f);
  CHECK(ember::f16_to_f32(0x0400) == std::ldexp(1.0f, -14));              // smallest normal
  CHECK(ember::f16_to_f32(0x0001) == std::ldexp(1.0f, -24));              // smallest subnormal
  CHECK(ember::f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));           // largest subnormal
  CHECK(ember::f16_to_f32(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(bits(ember::f16_to_f32(0x0000)) == 0u);
  CHECK(bits(ember::f16_to_f32(0x8000)) == 0x80000000u);  // -0 keeps its sign
  CHECK(ember::f16_to_f32(0x7c00) == INFINITY);
  CHECK(ember::f16_to_f32(0xfc00) == -INFINITY);
  CHECK(std::isnan(ember::f16_to_f32(0x7e00)));
  CHECK(std::isnan(ember::f16_to_f32(0x7c01)));  // signalling payload stays NaN
  CHECK(std::isnan(ember::f16_to_f32(0xfe00)));
}

TEST_CASE("f32_to_f16 rounds to nearest even and round-trips every half") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = ember::f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      CHECK((ember::f32_to_f16(f) & 0x7fff) > 0x7c00);
      continue;
    }
    if (ember::f32_to_f16(f) != h) FAIL("half 0x" << std::hex << h << " does not round-trip");
  }
  const float one = 1.0f, ulp = std::ldexp(1.0f, -10);
  CHECK(ember::f32_to_f16(one + ulp / 2) == 0x3c00);                      // tie -> even (down)
  CHECK(ember::f32_to_f16(one + 3 * ulp / 2) == 0x3c02);                  // tie -> even (up)
  CHECK(ember::f32_to_f16(std::nextafter(one + ulp / 2, 2.0f)) == 0x3c01);  // just above the tie
  CHECK(ember::f32_to_f16(65519.0f) == 0x7bff);
  CHECK(ember::f32_to_f16(65520.0f) == 0x7c00);  // tie past the largest half -> inf
  CHECK(ember::f32_to_f16(-1e10f) == 0xfc00);
  CHECK(ember::f32_to_f16(INFINITY) == 0x7c00);
  CHECK(ember::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);         // tie with 0 -> 0
  CHECK(ember::f32_to_f16(-std::ldexp(1.0f, -25)) == 0x8000);
  CHECK(ember::f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(ember::f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);         // 1.5 subnormal units: tie -> even
  CHECK(ember::f32_to_f16(std::ldexp(5.0f, -25)) == 0x0002);         // 2.5 units -> 2
  CHECK(ember::f32_to_f16(std::ldexp(2047.0f, -25)) == 0x0400);      // 1023.5 units -> carries to normal
  CHECK(ember::f32_to_f16(1e-30f) == 0x0000);
  CHECK(ember::f32_to_f16(std::nanf("")) != 0x7c00);
  CHECK((ember::f32_to_f16(std::nanf("")) & 0x7c00) == 0x7c00);
  // A NaN whose payload lies only in the 13 bits f16 drops must stay NaN, not become inf.
  float low_nan;
  const uint32_t low_nan_bits = 0x7f800001u;
  std::memcpy(&low_nan, &low_nan_bits, 4);
  CHECK(ember::f32_to_f16(low_nan) != 0x7c00);
  CHECK(std::isnan(ember::f16_to_f32(ember::f32_to_f16(low_nan))));
}

// The compiler's own IEEE binary16: _Float16 (GCC 12 has it in C++ on x86-64 only), __fp16 on AArch64
// (converted by the fcvt instruction, round to nearest even, as _Float16).
#if defined(__aarch64__)
#define EMBER_NATIVE_F16 __fp16
#elif defined(__FLT16_MANT_DIG__)
#define EMBER_NATIVE_F16 _Float16
#endif
#if defined(EMBER_NATIVE_F16)
TEST_CASE("f32_to_f16 agrees with the compiler's _Float16 on random floats") {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = rng();
    if (i % 2) u = (u & 0x87ffffffu) | 0x30000000u;  // half of them in and around the f16 range
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    const EMBER_NATIVE_F16 h = static_cast<EMBER_NATIVE_F16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    if (ember::f32_to_f16(f) != hb) FAIL("f32 0x" << std::hex << u << ": got " << ember::f32_to_f16(f) << ", want " << hb);
  }
}
#endif

TEST_CASE("decode_f32: little-endian f32 and f16, int8 times its row's scale") {
  const float f32s[3] = {1.5f, -0.0f, 3.0e-39f};  // a subnormal too: a plain byte copy
  std::vector<uint8_t> raw(sizeof f32s);
  std::memcpy(raw.data(), f32s, sizeof f32s);
  float out[6];
  ember::decode_f32(ember::DType::kF32, raw.data(), 3, nullptr, 3, out);
  for (int i = 0; i < 3; ++i) CHECK(bits(out[i]) == bits(f32s[i]));
  const uint8_t f16s[6] = {0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00};  // 1, -2, the smallest subnormal
  ember::decode_f32(ember::DType::kF16, f16s, 3, nullptr, 3, out);
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == -2.0f);
  CHECK(out[2] == std::ldexp(1.0f, -24));
  const uint8_t q[6] = {1, 0xff, 127, 0x81, 0, 2};  // rows of 3: {1, -1, 127} x 0.5, {-127, 0, 2} x 2
  const float scales[2] = {0.5f, 2.0f};
  ember::decode_f32(ember::DType::kI8, q, 6, scales, 3, out);
  const float want[6] = {0.5f, -0.5f, 63.5f, -254.0f, 0.0f, 4.0f};
  for (int i = 0; i < 6; ++i) CHECK(out[i] == want[i]);
}

TEST_CASE("bf16_to_f32") {
  CHECK(ember::bf16_to_f32(0x3f80) == 1.0f);
  CHECK(ember::bf16_to_f32(0xc0a0) == -5.0f);
  CHECK(ember::bf16_to_f32(0x3eab) == 0.333984375f);
  CHECK(ember::bf16_to_f32(0x0001) == std::ldexp(1.0f, -133));  // subnormal
  CHECK(ember::bf16_to_f32(0x7f80) == INFINITY);
  CHECK(bits(ember::bf16_to_f32(0x8000)) == 0x80000000u);
  CHECK(std::isnan(ember::bf16_to_f32(0x7fc0)));
}

// ---- safetensors reader ----------------------------------------------------------------------------

TEST_CASE("safetensors: F32, F16 and BF16 tensors read exactly; metadata kept") {
  TmpDir d;
  const std::vector<uint16_t> h16 = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x8000, 0x7c00};
  const std::vector<uint16_t> b16 = {0x3f80, 0xc0a0, 0x3eab, 0xff80};
  write_file(d / "a.safetensors",
             safetensors({{"f", "F32", {2, 2}, f32_bytes({1.5f, -2.0f, 1e-40f, 3e38f})},
                          {"h", "F16", {2, 3}, u16_bytes(h16)},
                          {"b", "BF16", {4}, u16_bytes(b16)},
                          {"empty", "F32", {0, 3}, ""},
                          {"i", "I64", {1}, std::string(8, '\1')}},
                         json{{"format", "pt"}}));
  auto f = ember::SafetensorsFile::open(d / "a.safetensors");
  REQUIRE_MESSAGE(f.ok(), f.status().message());
  CHECK(f->entries().size() == 5);
  CHECK(f->metadata().at("format") == "pt");
  auto read = [&](const char* n) {
    const auto* e = f->find(n);
    REQUIRE(e != nullptr);
    auto r = f->read_f32(*e);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    return r.value();
  };
  CHECK(read("f") == std::vector<float>{1.5f, -2.0f, 1e-40f, 3e38f});
  CHECK(read("h") == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f, -0.0f, INFINITY});
  CHECK(read("b") == std::vector<float>{1.0f, -5.0f, 0.333984375f, -INFINITY});
  CHECK(read("empty").empty());
  const auto* i64 = f->find("i");
  REQUIRE(i64 != nullptr);
  auto r = f->read_f32(*i64);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kUnsupported);
  CHECK(contains(r.status().message(), "'i'"));
  CHECK(contains(r.status().message(), "unsupported dtype I64"));
}

TEST_CASE("safetensors: hostile headers are clear errors") {
  const std::string data16(16, '\0');
  SUBCASE("offsets beyond the data area") {
    expect_open_error(container(R"({"h.0.attn.c_attn.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,999999999]}})", data16),
                      {"tensor 'h.0.attn.c_attn.weight'", "data_offsets [0, 999999999] exceed the 16-byte data area"});
  }
  SUBCASE("offset end just past the data") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[4,20]}})", data16),
                      {"'w'", "exceed the 16-byte"});
  }
  SUBCASE("inverted offsets") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", data16),
                      {"'w'", "inverted"});
  }
  SUBCASE("size does not match the shape") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data16),
                      {"'w'", "16 bytes", "[3]", "needs 12"});
  }
  SUBCASE("shape product overflows") {
    expect_open_error(
        container(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,16]}})", data16),
        {"'w'", "overflows"});
  }
  SUBCASE("element size overflows") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[4611686018427387905],"data_offsets":[0,16]}})", data16),
                      {"'w'", "more than 2^64"});
  }
  SUBCASE("overlapping tensors") {
    expect_open_error(container(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},
                                    "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data16),
                      {"overlaps"});
  }
  SUBCASE("negative, fractional or missing shape") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", data16),
                      {"'w'", "non-negative integers"});
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", data16),
                      {"'w'", "non-negative integers"});
    expect_open_error(container(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", data16), {"'w'", "shape"});
  }
  SUBCASE("bad data_offsets") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", data16),
                      {"'w'", "data_offsets"});
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", data16),
                      {"'w'", "data_offsets"});
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}})", data16),
                      {"'w'", "data_offsets"});
  }
  SUBCASE("duplicate tensor names") {
    expect_open_error(container(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                                    "w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data16),
                      {"'w'", "twice"});
  }
  SUBCASE("unknown dtype") {
    expect_open_error(container(R"({"w":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}})", data16),
                      {"'w'", "unsupported dtype 'Q4_K'"}, StatusCode::kUnsupported);
    expect_open_error(container(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", data16), {"'w'", "dtype"});
  }
  SUBCASE("header size larger than the file") {
    std::string f = container(R"({})", "");
    f[0] = 100;
    expect_open_error(f, {"header size 100 exceeds the file (10 bytes)"});
    std::string huge(8, '\xff');
    expect_open_error(huge + "{}", {"header size 18446744073709551615 exceeds the file"});
  }
  SUBCASE("file shorter than the size field") {
    expect_open_error("", {"0 bytes", "too short"});
    expect_open_error(std::string("\x02\0\0", 3), {"3 bytes", "too short"});
  }
  SUBCASE("invalid JSON") {
    expect_open_error(container(R"({"w":{"dtype":"F32",)", data16), {"not valid JSON"});
    expect_open_error(container("\xff\xfe", data16), {"not valid JSON"});
    expect_open_error(container(R"([1,2,3])", data16), {"not a JSON object"});
    expect_open_error(container(R"({"w":[1]})", data16), {"'w'", "not a JSON object"});
    expect_open_error(container(R"({"__metadata__":{"a":1}})", data16), {"__metadata__"});
    expect_open_error(container(R"({"__metadata__":[]})", data16), {"__metadata__"});
  }
  SUBCASE("missing file") {
    CHECK(ember::SafetensorsFile::open("/nonexistent/x.safetensors").status().code() == StatusCode::kNotFound);
  }
  SUBCASE("valid edge cases") {
    CHECK(open_status(container("{}", "")).ok());
    CHECK(open_status(container(R"({"__metadata__":{}}    )", "")).ok());  // space padding is allowed
    CHECK(open_status(container(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", data16)).ok());
  }
}

TEST_CASE("safetensors: every truncation and random corruption fails cleanly") {
  Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
  const std::string good = safetensors(c.tensors);
  TmpDir d;
  const std::string path = d / "t.safetensors";
  auto open_and_read = [&](const std::string& bytes) {
    write_file(path, bytes);
    auto f = ember::SafetensorsFile::open(path);
    if (!f.ok()) return false;
    for (const auto& e : f->entries()) (void)f->read_f32(e);  // must stay in bounds (ASan checks)
    return true;
  };
  REQUIRE(open_and_read(good));
  for (size_t n = 0; n < good.size(); n += (n < 600 ? 1 : 97)) {
    if (open_and_read(good.substr(0, n))) FAIL("truncated to " << n << " bytes but opened");
  }
  std::mt19937 rng(1);
  const uint64_t header_end = 8 + (static_cast<uint8_t>(good[0]) | (static_cast<uint8_t>(good[1]) << 8));
  for (int i = 0; i < 400; ++i) {
    std::string bad = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bad[rng() % header_end] = static_cast<char>(rng());
    (void)open_and_read(bad);  // any result, no crash
  }
}

// ---- import: the three namings ---------------------------------------------------------------------

TEST_CASE("import hf-gpt2: prefixed keys, Conv1D transposes, buffers ignored, tied head") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
  c.write(d);
  auto r = ember::import_model(d.path.string() + "/");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const ember::ModelSpec& s = *r;
  CHECK(s.config.n_vocab == 7);
  CHECK(s.config.n_ctx == 5);
  CHECK(s.config.n_embd == 4);
  CHECK(s.config.n_head == 2);
  CHECK(s.config.n_layer == 2);
  CHECK(s.config.n_ff == 8);
  CHECK(s.config.norm == ember::NormPlacement::kPreLN);
  CHECK(s.config.activation == ember::Activation::kGeluTanh);
  CHECK(s.config.tied_lm_head);
  CHECK(s.config.norm_eps == doctest::Approx(1e-5));
  CHECK(s.metadata.at("naming") == "hf-gpt2");
  CHECK(s.metadata.at("source") == d.path.filename().string());
  CHECK(s.tokenizer.kind() == ember::TokenizerKind::kNone);
  CHECK(s.find("lm_head.weight") == nullptr);
  CHECK(s.validate().ok());
  expect_tensor(s, "wte", c.values["transformer.wte.weight"], false);
  expect_tensor(s, "wpe", c.values["transformer.wpe.weight"], false);
  expect_tensor(s, "ln_f.bias", c.values["transformer.ln_f.bias"], false);
  for (const char* k : {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}) {
    for (int l = 0; l < 2; ++l) {
      const std::string n = "h." + std::to_string(l) + "." + k;
      expect_tensor(s, n + ".weight", c.values["transformer." + n + ".weight"], true);
      expect_tensor(s, n + ".bias", c.values["transformer." + n + ".bias"], false);
    }
  }
  // One element by hand: canonical c_attn [3C=12, C=4] (o=5, i=2) is Conv1D [4, 12] (i=2, o=5).
  const auto* w = s.find("h.0.attn.c_attn.weight");
  REQUIRE(w != nullptr);
  CHECK(w->shape == std::vector<uint64_t>{12, 4});
  CHECK(floats_of(*w)[5 * 4 + 2] == c.values["transformer.h.0.attn.c_attn.weight"][2 * 12 + 5]);
  const auto* fc = s.find("h.1.mlp.c_proj.weight");
  REQUIRE(fc != nullptr);
  CHECK(fc->shape == std::vector<uint64_t>{4, 8});  // [C, F]
}

TEST_CASE("import hf-gpt2: unprefixed keys, untied head, F16 and BF16 weights, a .safetensors path") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kHfGpt2, "", true, false);
  c.config["tie_word_embeddings"] = false;
  c.config["n_inner"] = nullptr;  // -> 4 * n_embd
  c.config["activation_function"] = "gelu";
  c.config["layer_norm_epsilon"] = 1e-6;
  c.F = 16;
  // Rebuild the MLP weights for F = 16 and store a few tensors as F16 / BF16.
  for (int l = 0; l < 2; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    for (const char* k : {"mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight"}) c.remove(h + k);
    c.add(h + "mlp.c_fc.weight", {4, 16});
    c.add(h + "mlp.c_fc.bias", {16});
    c.add(h + "mlp.c_proj.weight", {16, 4});
  }
  c.add("lm_head.weight", {7, 4});
  const std::vector<uint16_t> wpe16 = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x8000, 0x0400, 0x03ff,
                                       0x4000, 0x4200, 0x4400, 0x4500, 0xbc00, 0x3800, 0x3400, 0x2e66,
                                       0x0000, 0x0002, 0x5640, 0xd640};
  c.find("wpe.weight")->dtype = "F16";
  c.find("wpe.weight")->bytes = u16_bytes(wpe16);
  const std::vector<uint16_t> ln16 = {0x3f80, 0xc0a0, 0x3eab, 0x0001};
  c.find("h.1.ln_2.weight")->dtype = "BF16";
  c.find("h.1.ln_2.weight")->bytes = u16_bytes(ln16);
  c.write(d, "checkpoint.safetensors");
  auto r = ember::import_model(d / "checkpoint.safetensors");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const ember::ModelSpec& s = *r;
  CHECK_FALSE(s.config.tied_lm_head);
  CHECK(s.config.n_ff == 16);
  CHECK(s.config.activation == ember::Activation::kGeluErf);
  CHECK(s.config.norm_eps == doctest::Approx(1e-6));
  CHECK(s.metadata.at("source") == "checkpoint.safetensors");
  CHECK(s.validate().ok());
  expect_tensor(s, "lm_head.weight", c.values["lm_head.weight"], false);
  expect_tensor(s, "h.1.mlp.c_fc.weight", c.values["h.1.mlp.c_fc.weight"], true);
  std::vector<float> wpe;
  for (uint16_t h : wpe16) wpe.push_back(ember::f16_to_f32(h));
  expect_tensor(s, "wpe", wpe, false);
  CHECK(floats_of(*s.find("wpe"))[2] == std::ldexp(1.0f, -24));
  CHECK(floats_of(*s.find("wpe"))[3] == 65504.0f);
  CHECK(floats_of(*s.find("h.1.ln_2.weight")) == std::vector<float>{1.0f, -5.0f, 0.333984375f, std::ldexp(1.0f, -133)});
}

TEST_CASE("import hf-openai-gpt: tokens_embed / positions_embed, post-LN, no ln_f, activations") {
  for (const char* prefix : {"", "transformer."}) {
    CAPTURE(prefix);
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kOpenai, prefix);
    c.tensors.push_back({std::string(prefix) + "position_ids", "I64", {5}, std::string(40, '\0')});
    c.config["afn"] = prefix[0] ? "relu" : "gelu";
    c.write(d);
    auto r = ember::import_model(d.path.string());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    const ember::ModelSpec& s = *r;
    CHECK(s.config.norm == ember::NormPlacement::kPostLN);
    CHECK(s.config.activation == (prefix[0] ? ember::Activation::kRelu : ember::Activation::kGeluErf));
    CHECK(s.config.n_ff == 16);
    CHECK(s.config.tied_lm_head);
    CHECK(s.find("ln_f.weight") == nullptr);
    CHECK(s.metadata.at("naming") == "hf-openai-gpt");
    CHECK(s.validate().ok());
    const std::string p = prefix;
    expect_tensor(s, "wte", c.values[p + "tokens_embed.weight"], false);
    expect_tensor(s, "wpe", c.values[p + "positions_embed.weight"], false);
    expect_tensor(s, "h.1.attn.c_attn.weight", c.values[p + "h.1.attn.c_attn.weight"], true);
    expect_tensor(s, "h.0.mlp.c_proj.weight", c.values[p + "h.0.mlp.c_proj.weight"], true);
    expect_tensor(s, "h.0.ln_2.bias", c.values[p + "h.0.ln_2.bias"], false);
  }
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kOpenai, "");
  c.config["afn"] = "gelu_new";
  c.write(d);
  // GPT-1's vocab.json / merges.txt are not byte-level BPE: left out rather than misread.
  write_file(d / "vocab.json", R"({"a</w>": 0})");
  write_file(d / "merges.txt", "#version: 0.2\n");
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->config.activation == ember::Activation::kGeluTanh);
  CHECK(r->tokenizer.kind() == ember::TokenizerKind::kNone);
  CHECK(r->metadata.count("tokenizer_skipped") == 1);
}

TEST_CASE("import nanogpt: Linear layout kept, untied head, biases") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
  c.add("lm_head.weight", {7, 4});  // different values from wte: untied
  c.write(d);
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const ember::ModelSpec& s = *r;
  CHECK(s.metadata.at("naming") == "nanogpt");
  CHECK(s.config.norm == ember::NormPlacement::kPreLN);
  CHECK(s.config.activation == ember::Activation::kGeluErf);
  CHECK(s.config.norm_eps == doctest::Approx(1e-5));
  CHECK(s.config.n_ctx == 5);
  CHECK(s.config.n_ff == 16);
  CHECK_FALSE(s.config.tied_lm_head);
  CHECK(s.validate().ok());
  expect_tensor(s, "lm_head.weight", c.values["lm_head.weight"], false);
  expect_tensor(s, "h.0.attn.c_attn.weight", c.values["transformer.h.0.attn.c_attn.weight"], false);
  expect_tensor(s, "h.1.mlp.c_fc.weight", c.values["transformer.h.1.mlp.c_fc.weight"], false);
  expect_tensor(s, "h.1.mlp.c_fc.bias", c.values["transformer.h.1.mlp.c_fc.bias"], false);
}

TEST_CASE("import nanogpt: bias=false, torch.compile prefix, tied head, config under model_args") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kNano, "_orig_mod.transformer.", false);
  StTensor lm = *c.find("_orig_mod.transformer.wte.weight");
  lm.name = "_orig_mod.lm_head.weight";
  c.tensors.push_back(lm);  // bitwise equal to wte: tied
  c.tensors.push_back({"_orig_mod.transformer.h.0.attn.bias", "F32", {1, 1, 5, 5}, f32_bytes(std::vector<float>(25, 1.0f))});
  c.config = json{{"model_args", c.config}, {"iter_num", 5000}};
  c.write(d);
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const ember::ModelSpec& s = *r;
  CHECK(s.config.tied_lm_head);
  CHECK(s.find("lm_head.weight") == nullptr);
  CHECK(s.validate().ok());
  for (const char* zero : {"h.0.ln_1.bias", "h.1.attn.c_attn.bias", "h.1.mlp.c_proj.bias", "ln_f.bias"}) {
    const auto* t = s.find(zero);
    REQUIRE_MESSAGE(t != nullptr, zero);
    for (float v : floats_of(*t)) CHECK(v == 0.0f);
  }
  expect_tensor(s, "h.1.ln_1.weight", c.values["_orig_mod.transformer.h.1.ln_1.weight"], false);
  expect_tensor(s, "wte", c.values["_orig_mod.transformer.wte.weight"], false);
}

TEST_CASE("import nanogpt: only lm_head.weight stored for the tied pair") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kNano, "transformer.", false);
  c.find("transformer.wte.weight")->name = "lm_head.weight";
  c.write(d);
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->config.tied_lm_head);
  expect_tensor(*r, "wte", c.values["transformer.wte.weight"], false);
}

TEST_CASE("import: a nanoGPT state dict (nn.Linear [out, in]) with a Hugging Face GPT-2 config.json") {
  // What nanoGPT's model.state_dict() saved beside a hand-written HF config gives: HF names, Linear shapes.
  TmpDir nano_dir, hf_dir;
  Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
  StTensor lm = *c.find("transformer.wte.weight");
  lm.name = "lm_head.weight";  // tied: bitwise equal
  c.tensors.push_back(lm);
  c.write(nano_dir);
  c.config = {{"model_type", "gpt2"}, {"vocab_size", c.V}, {"n_positions", c.T}, {"n_embd", c.C}, {"n_head", c.H},
              {"n_layer", c.L}, {"activation_function", "gelu"}, {"layer_norm_epsilon", 1e-5}};
  c.write(hf_dir);
  auto nano = ember::import_model(nano_dir.path.string());
  auto hf = ember::import_model(hf_dir.path.string());
  REQUIRE_MESSAGE(nano.ok(), nano.status().message());
  REQUIRE_MESSAGE(hf.ok(), hf.status().message());
  CHECK(hf->metadata.at("naming") == "hf-gpt2");
  CHECK(contains(hf->metadata.at("layout"), "nn.Linear weights [out, in] (transformer.h.0.attn.c_attn.weight is [12, 4])"));
  CHECK(nano->metadata.count("layout") == 0);
  CHECK(hf->config.tied_lm_head);
  REQUIRE(hf->tensors.size() == nano->tensors.size());
  for (const auto& t : nano->tensors) {
    const ember::TensorData* o = hf->find(t.name);
    REQUIRE_MESSAGE(o != nullptr, t.name);
    CHECK_MESSAGE(o->data == t.data, t.name);  // nothing transposed
  }
  expect_tensor(*hf, "h.1.mlp.c_fc.weight", c.values["transformer.h.1.mlp.c_fc.weight"], false);
}

// ---- import: errors ---------------------------------------------------------------------------------

TEST_CASE("import: missing, misshapen and unexpected tensors") {
  SUBCASE("missing tensor") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.remove("transformer.h.1.mlp.c_fc.bias");
    c.write(d);
    expect_error(d.path.string(), StatusCode::kNotFound, {"model.safetensors", "missing tensor 'h.1.mlp.c_fc.bias'"});
  }
  SUBCASE("untied hf-gpt2 without lm_head") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.config["tie_word_embeddings"] = false;
    c.write(d);
    expect_error(d.path.string(), StatusCode::kNotFound, {"missing tensor 'lm_head.weight'"});
  }
  SUBCASE("Linear layout in an hf-gpt2 file for QKV only (the MLP stays Conv1D)") {
    // QKV's shape decides the layout of the whole file (nanoGPT state dicts with an HF config are
    // imported, see above); the first tensor that disagrees is named, with the decision.
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.find("transformer.h.0.attn.c_attn.weight")->shape = {12, 4};
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile,
                 {"'transformer.h.0.mlp.c_fc.weight'", "shape [4, 8], expected [8, 4]",
                  "the layout was read from nn.Linear weights [out, in] (transformer.h.0.attn.c_attn.weight is [12, 4])"});
  }
  SUBCASE("wrong embedding shape") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
    c.config["vocab_size"] = 8;
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"'transformer.wte.weight'", "[7, 4]", "expected [8, 4]"});
  }
  SUBCASE("nanogpt lm_head of the wrong shape") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
    c.add("lm_head.weight", {4, 7});
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"'lm_head.weight'", "expected [7, 4]"});
  }
  SUBCASE("unexpected tensors") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.add("score.weight", {2, 4});
    c.add("transformer.h.2.ln_1.weight", {4});  // a layer beyond n_layer
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"unexpected tensors", "'score.weight'", "'transformer.h.2.ln_1.weight'"});
  }
  SUBCASE("biases in a bias=false nanogpt") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kNano, "transformer.", true);
    c.config["bias"] = false;
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"unexpected tensors", "bias'"});
  }
  SUBCASE("a key present with and without the prefix") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.add("wpe.weight", {5, 4});
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"'transformer.wpe.weight'", "'wpe.weight'"});
  }
  SUBCASE("tied config but a different lm_head") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.add("lm_head.weight", {7, 4});
    c.write(d);
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"lm_head.weight differs", "tie_word_embeddings"});
  }
  SUBCASE("unsupported tensor dtype") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.find("transformer.ln_f.weight")->dtype = "I32";
    c.write(d);
    expect_error(d.path.string(), StatusCode::kUnsupported, {"'transformer.ln_f.weight'", "unsupported dtype I32"});
  }
  SUBCASE("lying offsets through import") {
    TmpDir d;
    Checkpoint c = make_checkpoint(Src::kHfGpt2, "transformer.");
    c.write(d);
    std::string bytes;
    {
      std::ifstream f(d / "model.safetensors", std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(f), {});
    }
    write_file(d / "model.safetensors", bytes.substr(0, bytes.size() - 10));
    expect_error(d.path.string(), StatusCode::kInvalidFile, {"model.safetensors", "exceed the"});
  }
}

TEST_CASE("import: config.json errors name the field") {
  auto with_config = [](Src src, const std::function<void(json&)>& edit, StatusCode code,
                        std::vector<std::string> parts) {
    TmpDir d;
    Checkpoint c = make_checkpoint(src, "");
    edit(c.config);
    c.write(d);
    expect_error(d.path.string(), code, parts);
  };
  with_config(Src::kHfGpt2, [](json& j) { j.erase("n_head"); }, StatusCode::kInvalidFile,
              {"config.json", "missing field 'n_head'"});
  with_config(Src::kHfGpt2, [](json& j) { j["n_embd"] = "4"; }, StatusCode::kInvalidFile,
              {"config.json", "'n_embd' must be a non-negative integer", "\"4\""});
  with_config(Src::kHfGpt2, [](json& j) { j["n_layer"] = -2; }, StatusCode::kInvalidFile, {"'n_layer'"});
  with_config(Src::kHfGpt2, [](json& j) { j["n_positions"] = 4.5; }, StatusCode::kInvalidFile, {"'n_positions'"});
  with_config(Src::kHfGpt2, [](json& j) { j["layer_norm_epsilon"] = "small"; }, StatusCode::kInvalidFile,
              {"'layer_norm_epsilon' must be a number"});
  with_config(Src::kHfGpt2, [](json& j) { j["tie_word_embeddings"] = 1; }, StatusCode::kInvalidFile,
              {"'tie_word_embeddings' must be true or false"});
  with_config(Src::kHfGpt2, [](json& j) { j["activation_function"] = "swish"; }, StatusCode::kUnsupported,
              {"'activation_function'", "swish"});
  with_config(Src::kHfGpt2, [](json& j) { j["scale_attn_by_inverse_layer_idx"] = true; }, StatusCode::kUnsupported,
              {"scale_attn_by_inverse_layer_idx"});
  with_config(Src::kHfGpt2, [](json& j) { j["n_head"] = 3; }, StatusCode::kInvalidFile,
              {"config.json", "not a multiple of n_head"});
  with_config(Src::kHfGpt2, [](json& j) { j["model_type"] = "llama"; }, StatusCode::kUnsupported, {"'llama'"});
  with_config(Src::kHfGpt2, [](json& j) { j.erase("model_type"); }, StatusCode::kInvalidFile, {"model_type", "block_size"});
  with_config(Src::kOpenai, [](json& j) { j["afn"] = "silu"; }, StatusCode::kUnsupported, {"'afn'", "silu"});
  with_config(Src::kOpenai, [](json& j) { j.erase("n_positions"); }, StatusCode::kInvalidFile, {"'n_positions'"});
  with_config(Src::kNano, [](json& j) { j.erase("bias"); }, StatusCode::kInvalidFile, {"missing field 'bias'"});
  with_config(Src::kNano, [](json& j) { j["block_size"] = nullptr; }, StatusCode::kInvalidFile,
              {"missing field 'block_size'"});

  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kHfGpt2, "");
  c.write(d);
  write_file(d / "config.json", "{\"model_type\": \"gpt2\",");
  expect_error(d.path.string(), StatusCode::kInvalidFile, {"config.json", "not valid JSON"});
  write_file(d / "config.json", "[]");
  expect_error(d.path.string(), StatusCode::kInvalidFile, {"config.json", "not a JSON object"});
  fs::remove(d / "config.json");
  expect_error(d.path.string(), StatusCode::kNotFound, {"config.json"});
}

TEST_CASE("import: input paths") {
  expect_error("/nonexistent/model", StatusCode::kNotFound, {"/nonexistent/model"});
  TmpDir d;
  expect_error(d.path.string(), StatusCode::kNotFound, {"no .safetensors"});
  write_file(d / "pytorch_model.bin", "x");
  expect_error(d / "pytorch_model.bin", StatusCode::kUnsupported, {"pytorch_model.bin"});
  Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
  c.write(d, "ckpt.safetensors");  // the only .safetensors in the directory
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  write_file(d / "other.safetensors", safetensors({}));
  expect_error(d.path.string(), StatusCode::kUnsupported, {"ckpt.safetensors", "other.safetensors"});
  c.write(d);  // model.safetensors wins
  CHECK(ember::import_model(d.path.string()).ok());
}

TEST_CASE("import: tokenizer files beside the checkpoint") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kNano, "transformer.");
  c.write(d);
  write_file(d / "vocab_chars.json", R"(["a", "b", "c", " ", "\n"])");
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->tokenizer.kind() == ember::TokenizerKind::kChars);
  CHECK(r->tokenizer.n_vocab() == 5);
  CHECK(r->validate().ok());

  write_file(d / "vocab_chars.json", R"(["a", "b", "c", "d", "e", "f", "g", "h"])");  // 8 > vocab_size 7
  expect_error(d.path.string(), StatusCode::kInvalidFile, {"vocab_chars.json", "8 tokens", "7"});
  write_file(d / "vocab_chars.json", R"(["a", )");
  CHECK_FALSE(ember::import_model(d.path.string()).ok());
}

TEST_CASE("import: GPT-2 BPE files beside an hf-gpt2 checkpoint") {
  const std::string tok_dir = ember_test::data_dir() + "/gpt2";
  REQUIRE_MESSAGE(ember_test::exists(tok_dir + "/encoder.json"), tok_dir << "/encoder.json is missing from the repository");
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kHfGpt2, "");
  c.write(d);
  fs::copy_file(tok_dir + "/encoder.json", d / "encoder.json");
  fs::copy_file(tok_dir + "/vocab.bpe", d / "vocab.bpe");
  // 50257 tokens do not fit the 7-entry vocabulary.
  expect_error(d.path.string(), StatusCode::kInvalidFile, {"encoder.json", "50257 tokens"});
}

// ---- ModelSpec::validate and .ember ----------------------------------------------------------------

TEST_CASE("ModelSpec::validate names the tensor at fault") {
  TmpDir d;
  make_checkpoint(Src::kHfGpt2, "").write(d);
  // ModelSpec is move-only (it owns a Tokenizer): each case imports a fresh copy.
  auto fresh = [&] {
    auto r = ember::import_model(d.path.string());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    return std::move(r).value();
  };
  const ember::ModelSpec good = fresh();
  REQUIRE(good.validate().ok());
  auto expect_invalid = [](const ember::ModelSpec& s, const std::string& part) {
    const ember::Status st = s.validate();
    REQUIRE_FALSE(st.ok());
    CHECK_MESSAGE(contains(st.message(), part), st.message());
  };
  {
    ember::ModelSpec s = fresh();
    s.tensors.erase(s.tensors.begin() + 3);
    expect_invalid(s, "missing tensor '" + good.tensors[3].name + "'");
  }
  {
    ember::ModelSpec s = fresh();
    s.tensors.push_back(s.tensors[0]);
    expect_invalid(s, "tensor 'wte' appears twice");
  }
  {
    ember::ModelSpec s = fresh();
    s.tensors[0].name = "lm_head.weight";  // not part of a tied layout
    expect_invalid(s, "tensor 'lm_head.weight'");
  }
  {
    ember::ModelSpec s = fresh();
    s.tensors[1].shape = {4, 5};
    expect_invalid(s, "tensor 'wpe' has shape [4, 5], expected [5, 4]");
  }
  {
    ember::ModelSpec s = fresh();
    s.tensors[1].data.pop_back();
    expect_invalid(s, "tensor 'wpe' holds 79 bytes, expected 80");
  }
  {
    ember::ModelSpec s = fresh();
    ember::TensorData& t = *std::find_if(s.tensors.begin(), s.tensors.end(),
                                         [](const ember::TensorData& x) { return x.name == "h.0.attn.c_attn.weight"; });
    t.dtype = ember::DType::kI8;
    t.data.resize(12 * 4);
    expect_invalid(s, "tensor 'h.0.attn.c_attn.weight' has 0 scales, expected 12");
    t.scales.assign(12, 0.5f);
    CHECK(s.validate().ok());
    t.scales[7] = NAN;
    expect_invalid(s, "tensor 'h.0.attn.c_attn.weight' has a non-finite scale");
    t.scales[7] = 1.0f;
    t.dtype = ember::DType::kF16;
    t.data.resize(12 * 4 * 2);
    expect_invalid(s, "has scales");
    t.scales.clear();
    CHECK(s.validate().ok());
  }
  {
    ember::ModelSpec s = fresh();
    s.config.n_head = 3;
    CHECK_FALSE(s.validate().ok());
  }
}

TEST_CASE("import: an .ember file reads back what was written") {
  TmpDir d;
  Checkpoint c = make_checkpoint(Src::kOpenai, "");
  c.write(d);
  auto r = ember::import_model(d.path.string());
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const ember::Status w = ember::write_model_file(*r, d / "m.ember");
  REQUIRE_MESSAGE(w.ok(), w.message());
  auto back = ember::import_model(d / "m.ember");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->config.norm == ember::NormPlacement::kPostLN);
  CHECK(back->config.n_ff == r->config.n_ff);
  REQUIRE(back->tensors.size() == r->tensors.size());
  for (size_t i = 0; i < r->tensors.size(); ++i) {
    const ember::TensorData* t = back->find(r->tensors[i].name);
    REQUIRE(t != nullptr);
    CHECK(t->data == r->tensors[i].data);
  }
}

// ---- golden checkpoints ----------------------------------------------------------------------------

TEST_CASE("golden checkpoints import with the documented configs") {
  // Naming, norm placement, activation and head tying are each fixture's point; the sizes are read
  // from the fixture's own golden.json (written by tests/golden/make_golden.py with the checkpoint).
  const std::string root = ember_test::data_dir() + "/golden";
  struct Want {
    const char* dir;
    const char* naming;
    ember::NormPlacement norm;
    ember::Activation act;
    bool tied;
    const char* conv1d_src;  // a Conv1D source key to check the transpose against, or nullptr
  };
  const Want wants[] = {
      {"gpt2", "hf-gpt2", ember::NormPlacement::kPreLN, ember::Activation::kGeluTanh, false,
       "transformer.h.1.attn.c_attn.weight"},
      {"openai_gpt", "hf-openai-gpt", ember::NormPlacement::kPostLN, ember::Activation::kGeluErf, true,
       "h.2.mlp.c_fc.weight"},
      {"gpt1_relu", "hf-openai-gpt", ember::NormPlacement::kPostLN, ember::Activation::kRelu, true,
       "h.0.attn.c_proj.weight"},
      {"nanogpt", "nanogpt", ember::NormPlacement::kPreLN, ember::Activation::kGeluErf, true, nullptr},
  };
  for (const Want& w : wants) {
    CAPTURE(w.dir);
    const std::string dir = root + "/" + w.dir;
    REQUIRE_MESSAGE(ember_test::exists(dir + "/model.safetensors"), dir << "/model.safetensors is missing from the repository");
    std::ifstream gf(dir + "/golden.json");
    REQUIRE(gf.good());
    const json want = json::parse(gf)["config"];
    auto r = ember::import_model(dir);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    const ember::ModelSpec& s = *r;
    const ember::ModelConfig& c = s.config;
    CHECK(c.n_vocab == want["vocab_size"].get<uint32_t>());
    CHECK(c.n_ctx == want["n_ctx"].get<uint32_t>());
    CHECK(c.n_embd == want["n_embd"].get<uint32_t>());
    CHECK(c.n_head == want["n_head"].get<uint32_t>());
    CHECK(c.n_layer == want["n_layer"].get<uint32_t>());
    CHECK(c.n_ff == want["n_inner"].get<uint32_t>());
    CHECK(want["norm"].get<std::string>() == (w.norm == ember::NormPlacement::kPreLN ? "pre_ln" : "post_ln"));
    CHECK(want["tied_lm_head"].get<bool>() == w.tied);
    CHECK(c.norm == w.norm);
    CHECK(c.activation == w.act);
    CHECK(c.tied_lm_head == w.tied);
    CHECK(c.norm_eps == doctest::Approx(1e-5));
    CHECK(c.n_classes == 0);
    CHECK(s.metadata.at("naming") == w.naming);
    CHECK(s.metadata.at("source") == w.dir);
    const ember::Status v = s.validate();
    CHECK_MESSAGE(v.ok(), v.message());
    if (std::string(w.dir) == "nanogpt") {
      CHECK(s.tokenizer.kind() == ember::TokenizerKind::kChars);
      CHECK(s.tokenizer.n_vocab() == 65);
      for (const char* zero : {"h.0.ln_1.bias", "h.2.mlp.c_fc.bias", "ln_f.bias"})
        for (float x : floats_of(*s.find(zero))) CHECK(x == 0.0f);
    } else {
      CHECK(s.tokenizer.kind() == ember::TokenizerKind::kNone);
    }
    if (w.conv1d_src) {
      auto f = ember::SafetensorsFile::open(dir + "/model.safetensors");
      REQUIRE(f.ok());
      const auto* e = f->find(w.conv1d_src);
      REQUIRE(e != nullptr);
      std::string canon = w.conv1d_src;
      if (canon.rfind("transformer.", 0) == 0) canon = canon.substr(12);
      expect_tensor(s, canon, f->read_f32(*e).value(), true);
    }
  }
}
