// Hostile input: what fuzzing (tests/fuzz) and review found, each as a regression test through the
// public API, and the rows of the README's "Security" table that no other suite covers. A bad input
// must give an error that names the problem: never a crash, a sanitizer report, a hang or a wrong
// answer (this suite also runs under ASan + UBSan in tools/test.sh).
#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "convert/atomic_file.h"
#include "convert/import.h"
#include "convert/safetensors.h"
#include "convert/tokenizer_files.h"
#include "convert/writer.h"
#include "ember/convert.h"
#include "ember/dataset.h"
#include "ember/io.h"
#include "ember/model.h"
#include "ember/quantize.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "ember_generated.h"
#include "format/ember_file.h"
#include "kernels/kernels.h"
#include "model_specs.h"
#include "skip.h"
#include "test_paths.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMBER_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_TEST_ASAN 1
#endif
#endif
#ifndef EMBER_TEST_ASAN
#define EMBER_TEST_ASAN 0
#endif

namespace {

std::string tmp(const std::string& name) { return ember_test::temp_dir() + "/ember_security_" + name; }

void write_all(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of a failed result; fails the test if it succeeded.
template <typename R>
std::string error_of(const R& r) {
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.status().message().empty());
  return r.status().message();
}
std::string error_of(const ember::Status& s) {
  REQUIRE_FALSE(s.ok());
  CHECK_FALSE(s.message().empty());
  return s.message();
}

// A small float model: chars tokenizer "\n abcdefghi", n_ctx 8.
ember::ModelSpec tiny_spec() {
  ember::ModelConfig c;
  c.n_vocab = 11;
  c.n_ctx = 8;
  c.n_embd = 8;
  c.n_head = 2;
  c.n_layer = 1;
  c.n_ff = 16;
  ember::ModelSpec s = ember_test::random_spec(c, 3, 0.3f);
  std::vector<std::string> syms;
  for (char ch : std::string("\n abcdefghi")) syms.emplace_back(1, ch);
  s.tokenizer = ember::Tokenizer::chars(syms).value();
  return s;
}

ember::TensorData& tensor(ember::ModelSpec& s, const std::string& name) {
  for (ember::TensorData& t : s.tensors)
    if (t.name == name) return t;
  FAIL("no tensor " << name);
  return s.tensors[0];
}

void set_f32(ember::TensorData& t, size_t i, float v) { std::memcpy(&t.data[4 * i], &v, 4); }

std::string load_error(const std::string& path) { return error_of(ember::Model::load(path)); }

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string safetensors_container(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

// ---- found by fuzzing ------------------------------------------------------------------------------

TEST_CASE("security: a tensor shape at an unaligned offset is read without a misaligned load (fuzz: model)") {
  // The FlatBuffers verifier checks a vector's 4-byte length, not the alignment of its 8-byte
  // elements; the loader read shape[] in place (UBSan: load of misaligned address). Input found by
  // tools/fuzz.sh model, committed as found.
  const std::string p = ember_test::data_dir() + "/fuzz/model_unaligned_shape.ember";
  REQUIRE(ember_test::exists(p));
  const std::string e = load_error(p);
  CHECK(contains(e, "model_unaligned_shape.ember: tensor 'h.0.ln_2.weight': size 8 bytes does not match shape [0, "));
  CHECK(error_of(ember::read_model_file(p)) == e);
}

TEST_CASE("security: JSON nested 100,000 deep is an error, not a stack overflow") {
  // Parsing is iterative, but nlohmann's dump() (error messages) and copies of a value recurse once per
  // level: a 200 KB file overflowed the stack. Too large for the fuzzers' inputs, so built here.
  const std::string deep = nested(100000);
  SUBCASE("safetensors header") {
    const std::string p = tmp("deep.safetensors");
    write_all(p, safetensors_container(R"({"w":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,0]}})", ""));
    const std::string e = error_of(ember::SafetensorsFile::open(p));
    CHECK(contains(e, "tensor 'w': shape [[[[[[[[[["));
    CHECK(contains(e, "is not a list of non-negative integers"));
    CHECK(e.size() < 300);
    std::remove(p.c_str());
  }
  SUBCASE("config.json") {
    const std::string e = error_of(ember::parse_checkpoint_config(R"({"model_type": "gpt2", "n_embd": )" + deep + "}", "config.json"));
    CHECK(contains(e, "config.json: field 'n_embd' must be a non-negative integer, got [[[[[[[[[["));
  }
  SUBCASE("vocab.json") {
    const std::string e = error_of(ember::parse_gpt2_tokenizer(R"({"a": )" + deep + "}", "vocab.json", "", "merges.txt"));
    CHECK(contains(e, "vocab.json entry 'a': id [[[[[[[[[["));
  }
  SUBCASE("character vocabularies") {
    CHECK(contains(error_of(ember::parse_char_tokenizer(R"({"a": )" + deep + "}", "v.json")), "v.json entry 'a': id [[[["));
    CHECK(contains(error_of(ember::parse_char_tokenizer(R"({"itos": )" + deep + "}", "v.json")), "v.json entry 0: expected a string"));
    CHECK(contains(error_of(ember::parse_char_tokenizer(R"({"stoi": )" + deep + "}", "v.json")), "v.json entry 0: expected a string"));
    CHECK(contains(error_of(ember::parse_char_tokenizer(R"({"itos": {"0": )" + deep + "}}", "v.json")),
                   "v.json itos entry '0': expected a string"));
  }
  SUBCASE("JSON Lines dataset") {
    CHECK(contains(error_of(ember::parse_jsonl_dataset(R"({"label": "x", "text": )" + deep + "}\n", "d.jsonl")),
                   "d.jsonl line 1: \"text\" is missing or not a string"));
  }
}

// ---- non-finite numbers from a model ---------------------------------------------------------------

TEST_CASE("security: a checkpoint with NaN or infinite weights is refused at import") {
  // ember-quantize would otherwise turn them into int8 through a float-to-int cast of NaN (UB).
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    CAPTURE(bad);
    const std::string dir = tmp("nan_ckpt");
    REQUIRE(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()) == 0);
    const std::string src = ember_test::data_dir() + "/golden/nanogpt";
    write_all(dir + "/config.json", read_all(src + "/config.json"));
    std::string st = read_all(src + "/model.safetensors");
    {
      auto f = ember::SafetensorsFile::open(src + "/model.safetensors");
      REQUIRE(f.ok());
      const ember::SafetensorsFile::Entry* e = f->find("transformer.h.1.mlp.c_fc.weight");
      REQUIRE(e != nullptr);
      REQUIRE(e->dtype == "BF16");
      uint64_t header = 0;
      for (int i = 0; i < 8; ++i) header |= static_cast<uint64_t>(static_cast<uint8_t>(st[i])) << (8 * i);
      uint32_t bits;
      std::memcpy(&bits, &bad, 4);
      const uint16_t bf = static_cast<uint16_t>(bits >> 16);
      const size_t at = 8 + header + e->begin + 2 * 5;  // element 5
      st[at] = static_cast<char>(bf & 0xff);
      st[at + 1] = static_cast<char>(bf >> 8);
    }
    write_all(dir + "/model.safetensors", st);
    const std::string e = error_of(ember::import_model(dir));
    CHECK(contains(e, "model.safetensors: tensor 'transformer.h.1.mlp.c_fc.weight' holds " +
                          std::string(std::isnan(bad) ? "NaN" : "an infinity") + " at element 5; a model needs finite weights"));
    REQUIRE(std::system(("rm -rf '" + dir + "'").c_str()) == 0);
  }
}

TEST_CASE("security: NaN and infinite logits are never sampled, and never break the sort") {
  // A model with NaN or huge weights (f32 weights are not checked at load) produces NaN or inf logits.
  // NaN made the sampler's ordering inconsistent, which std::sort / nth_element do not allow.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(5);
  for (int trial = 0; trial < 3000; ++trial) {
    const size_t V = 1 + rng() % 300;
    std::vector<float> l(V);
    const unsigned nan_rate = 1 + rng() % 6;
    for (float& x : l) x = rng() % nan_rate == 0 ? nan : static_cast<float>(static_cast<int>(rng() % 9) - 4);
    ember::SamplerParams p;
    p.top_p = trial % 2 ? 0.9f : 1.0f;
    p.top_k = trial % 3 ? 0 : static_cast<int32_t>(1 + rng() % V);
    p.temperature = trial % 5 == 0 ? 0.0f : 0.8f;
    p.seed = static_cast<uint64_t>(trial);
    auto s = ember::Sampler::create(p, V);
    REQUIRE(s.ok());
    const int32_t t = s->sample(l.data(), nullptr, 0);
    REQUIRE(t >= 0);
    REQUIRE(static_cast<size_t>(t) < V);
    bool any_number = false;
    for (float x : l) any_number = any_number || !std::isnan(x);
    if (any_number) CHECK_FALSE(std::isnan(l[static_cast<size_t>(t)]));
  }
  // Infinite logits: the largest wins (there is no softmax of +inf); all NaN: some valid id.
  ember::SamplerParams p;
  auto s = ember::Sampler::create(p, 4);
  REQUIRE(s.ok());
  const std::vector<float> pos_inf = {1.0f, inf, nan, inf};
  CHECK(s->sample(pos_inf.data(), nullptr, 0) % 2 == 1);
  const std::vector<float> all_nan = {nan, nan, nan, nan};
  const int32_t t = s->sample(all_nan.data(), nullptr, 0);
  CHECK((t >= 0 && t < 4));
  const std::vector<float> neg = {-inf, -inf, 2.0f, -inf};
  CHECK(s->sample(neg.data(), nullptr, 0) == 2);
}

TEST_CASE("security: the reference kernel quantizes NaN activations to 0, not through a UB cast") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {1.0f, nan, -2.0f, 0.5f, inf, -inf, nan, 3.0f};
  std::vector<int8_t> q(x.size());
  float scale[2];
  ember::reference_kernels().quantize_rows_q8(x.data(), 2, 4, q.data(), scale);
  CHECK(q[1] == 0);
  CHECK(q[6] == 0);
  CHECK(q[2] == -127);  // row 0: amax 2 (NaN is not a maximum)
  for (int8_t v : q) CHECK(v != -128);
}

TEST_CASE("security: a model with NaN weights runs and samples tokens of its vocabulary") {
  // ember's writer and quantizer refuse such a model (below); a file from elsewhere can still hold one.
  for (bool int8 : {false, true}) {
    CAPTURE(int8);
    ember::ModelSpec s = tiny_spec();
    if (int8) REQUIRE(ember::quantize_model(s, {}).ok());
    set_f32(tensor(s, "ln_f.weight"), 2, std::numeric_limits<float>::quiet_NaN());
    set_f32(tensor(s, "h.0.mlp.c_fc.bias"), 0, std::numeric_limits<float>::infinity());
    const std::string p = tmp(int8 ? "nan8.ember" : "nan.ember");
    REQUIRE(ember::write_model_file_unchecked(s, p).ok());
    auto m = ember::Model::load(p);
    REQUIRE(m.ok());
    auto session = ember::Session::create(*m, {});
    REQUIRE(session.ok());
    std::vector<int32_t> ids = {1, 2, 3};
    REQUIRE((*session)->prefill(ids.data(), ids.size()).ok());
    for (float temp : {0.0f, 0.8f}) {
      ember::SamplerParams sp;
      sp.temperature = temp;
      sp.repeat_penalty = 1.3f;
      auto sampler = ember::Sampler::create(sp, 11);
      const int32_t t = sampler->sample((*session)->logits(), ids.data(), ids.size());
      CHECK((t >= 0 && t < 11));
      CHECK((*session)->decode(t).ok());
    }
    std::remove(p.c_str());
  }
}

// ---- rows of the README table not covered by another suite ------------------------------------------

TEST_CASE("security: a model file of another format version is refused") {
  flatbuffers::FlatBufferBuilder b;
  auto cfg = ember::fb::CreateConfig(b, 11, 8, 8, 2, 1, 16);
  std::vector<flatbuffers::Offset<ember::fb::Tensor>> none;
  b.FinishSizePrefixed(ember::fb::CreateModel(b, 2, cfg, 0, b.CreateVector(none)), ember::kFileIdentifier);
  const std::string p = tmp("version2.ember");
  write_all(p, std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize()));
  auto m = ember::Model::load(p);
  CHECK(m.status().code() == ember::StatusCode::kUnsupported);
  CHECK(contains(error_of(m), "version2.ember: format version 2, this build reads version 1"));
  std::remove(p.c_str());
}

TEST_CASE("security: an .ember file too short for its header is refused") {
  const std::string p = tmp("short_header.ember");
  write_all(p, "EMBR12345");
  CHECK(contains(load_error(p), "short_header.ember: file is 9 bytes, too small for an ember model"));
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  std::string bytes = read_all(p);
  const uint32_t huge = 1000000;
  std::memcpy(&bytes[0], &huge, 4);  // the size prefix of the FlatBuffer
  write_all(p, bytes);
  CHECK(contains(load_error(p), "short_header.ember: truncated: header says 1000004 bytes of metadata, file has " +
                                    std::to_string(bytes.size())));
  std::remove(p.c_str());
}

TEST_CASE("security: a corrupted FlatBuffers header fails verification") {
  const std::string p = tmp("corrupt_root.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  std::string bytes = read_all(p);
  const uint32_t root = 0xFFFFFF00u;  // the root table's offset, right after the size prefix
  std::memcpy(&bytes[4], &root, 4);
  write_all(p, bytes);
  const std::string e = load_error(p);
  CHECK(contains(e, "corrupt_root.ember: corrupted: FlatBuffers verification of the model header failed"));
  std::remove(p.c_str());
}

TEST_CASE("security: a tensor shape whose element count overflows 64 bits is refused") {
  ember::ModelSpec s = tiny_spec();
  tensor(s, "h.0.ln_1.bias").shape = {4294967296ull, 4294967296ull, 2};
  const std::string p = tmp("overflow.ember");
  REQUIRE(ember::write_model_file_unchecked(s, p).ok());
  CHECK(contains(load_error(p), "tensor 'h.0.ln_1.bias': shape [4294967296, 4294967296, 2] overflows"));
  std::remove(p.c_str());
}

TEST_CASE("security: an int8 weight of -128 is refused") {
  ember::ModelSpec s = tiny_spec();
  REQUIRE(ember::quantize_model(s, {}).ok());
  tensor(s, "h.0.attn.c_proj.weight").data[7] = static_cast<uint8_t>(-128);
  const std::string p = tmp("minus128.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  CHECK(contains(load_error(p), "tensor 'h.0.attn.c_proj.weight' holds -128 (int8 weights are symmetric, [-127, 127])"));
  std::remove(p.c_str());
}

TEST_CASE("security: a stored tokenizer larger than n_vocab is refused") {
  ember::ModelSpec s = tiny_spec();
  std::vector<std::string> syms;
  for (char ch : std::string("\n abcdefghijk")) syms.emplace_back(1, ch);  // 13 > n_vocab 11
  s.tokenizer = ember::Tokenizer::chars(syms).value();
  const std::string p = tmp("bigtok.ember");
  REQUIRE(ember::write_model_file_unchecked(s, p).ok());
  CHECK(contains(load_error(p), "bigtok.ember: tokenizer: 13 tokens exceed n_vocab 11"));
  std::remove(p.c_str());
}

TEST_CASE("security: tensor data past the end of the file is refused") {
  const std::string p = tmp("short.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  const std::string bytes = read_all(p);
  write_all(p, bytes.substr(0, bytes.size() - 64));
  const std::string e = load_error(p);
  CHECK(contains(e, "short.ember: tensor '"));
  CHECK(contains(e, "lies outside the file's"));
  CHECK(contains(e, "data section (truncated?)"));
  std::remove(p.c_str());
}

TEST_CASE("security: a session refuses an empty prompt, a prompt past n_ctx, ids outside the vocabulary and 0 threads") {
  const std::string p = tmp("session.ember");
  REQUIRE(ember::write_model_file(tiny_spec(), p).ok());
  auto m = ember::Model::load(p);
  REQUIRE(m.ok());
  std::remove(p.c_str());
  ember::SessionOptions zero;
  zero.n_threads = 0;
  CHECK(contains(error_of(ember::Session::create(*m, zero)), "session: n_threads must be at least 1 (got 0)"));
  auto s = ember::Session::create(*m, {});
  REQUIRE(s.ok());
  const std::vector<int32_t> nine(9, 1), bad = {1, 11};
  ember::Status st = (*s)->prefill(nine.data(), 0);
  CHECK(st.message() == "prefill: no tokens (empty prompt)");
  st = (*s)->prefill(nine.data(), nine.size());
  CHECK(st.code() == ember::StatusCode::kContextFull);
  CHECK(st.message() == "context is full: 0 tokens cached + 9 new > n_ctx 8");
  st = (*s)->prefill(bad.data(), bad.size());
  CHECK(st.message() == "token 11 at index 1 is outside the vocabulary [0, 11)");
  CHECK((*s)->n_past() == 0);  // nothing was cached by the refused calls
  const ember::Tokenizer& tok = (*m)->tokenizer();
  CHECK(error_of(tok.encode("ab\xff")) == "encode: invalid UTF-8 at byte offset 2");
  CHECK(error_of(tok.encode("abz")) == "encode: character 'z' (U+007A) at byte offset 2 is not in the vocabulary (a character-level "
                                       "model encodes only the " + std::to_string(tok.n_vocab()) +
                                       " characters of its training text; a byte-level BPE model encodes any UTF-8)");
}

TEST_CASE("security: a model asking for more memory than there is gives an error, not an exception") {
#if EMBER_TEST_ASAN
  ember_test::skip("under AddressSanitizer (its shadow memory does not fit an address-space limit)");
#else
  if (!ember_test::env_or("EMBER_EXE_WRAPPER", "").empty()) {
    // qemu-user maps guest memory inside its own reservation: the guest's RLIMIT_AS does not bound it.
    ember_test::skip("under an emulator (" + ember_test::env_or("EMBER_EXE_WRAPPER", "") + "): RLIMIT_AS does not apply");
    return;
  }
  // 8 MB of weights (wpe: n_ctx 32768 x n_embd 64) and n_head 64 ask for 512 MiB of attention scores
  // (n_batch 64 x n_head x n_ctx floats). The child limits its address space to 256 MB above what it
  // uses, so the allocation fails: Session::create must return an error (std::vector threw bad_alloc).
  ember::ModelConfig c;
  c.n_vocab = 2;
  c.n_ctx = 32768;
  c.n_embd = 64;
  c.n_head = 64;
  c.n_layer = 1;
  c.n_ff = 4;
  const ember::ModelSpec s = ember_test::random_spec(c, 0, 0.0f);  // zeros
  const std::string p = tmp("greedy_memory.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    try {
      auto m = ember::Model::load(p);
      if (!m.ok()) _exit(3);
      long pages = 0;
      if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
      }
      rlimit l{};
      l.rlim_cur = l.rlim_max = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (256u << 20);
      if (pages == 0 || setrlimit(RLIMIT_AS, &l) != 0) _exit(4);
      auto session = ember::Session::create(*m, {});
      if (session.ok()) _exit(5);
      _exit(session.status().code() == ember::StatusCode::kInternal &&
                    session.status().message().rfind("session: out of memory allocating the scratch for n_batch 64, n_head 64, n_ctx 32768", 0) == 0
                ? 0
                : 6);
    } catch (...) {
      _exit(7);  // an exception escaped the library
    }
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK_MESSAGE(WIFEXITED(status), "the child died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
  CHECK(WEXITSTATUS(status) == 0);
  std::remove(p.c_str());
#endif
}

// ---- the committed fuzz seeds stay valid inputs -----------------------------------------------------

TEST_CASE("security: the committed fuzz seeds are valid inputs of their parsers") {
  // A format change that invalidates the seeds would leave the fuzzers mutating rejected inputs.
  const std::string root = ember_test::data_dir() + "/../fuzz/corpus";
  auto files = [&](const std::string& target) {
    std::vector<std::string> out;
    DIR* d = opendir((root + "/" + target).c_str());
    REQUIRE_MESSAGE(d != nullptr, root << "/" << target);
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(root + "/" + target + "/" + e->d_name);
    closedir(d);
    CHECK(!out.empty());
    return out;
  };
  for (const std::string& f : files("model")) {
    CAPTURE(f);
    CHECK_MESSAGE(ember::Model::load(f).ok(), ember::Model::load(f).status().message());
  }
  for (const std::string& f : files("safetensors")) {
    CAPTURE(f);
    CHECK(ember::SafetensorsFile::open(f).ok());
  }
  for (const std::string& f : files("gpt2_vocab")) {
    CAPTURE(f);
    const std::string in = read_all(f);
    const size_t nul = in.find('\0');
    REQUIRE(nul != std::string::npos);
    CHECK(ember::parse_gpt2_tokenizer(in.substr(0, nul), "v", in.substr(nul + 1), "m").ok());
  }
  for (const std::string& f : files("char_vocab")) {
    CAPTURE(f);
    CHECK(ember::parse_char_tokenizer(read_all(f), f).ok());
  }
  for (const std::string& f : files("config_json")) {
    CAPTURE(f);
    CHECK(ember::parse_checkpoint_config(read_all(f), f).ok());
  }
  for (const std::string& f : files("dataset")) {
    CAPTURE(f);
    CHECK(ember::parse_jsonl_dataset(read_all(f), f).ok() == !contains(f, "bad_"));
  }
  CHECK(files("bpe_encode").size() > 10);
}

// ---- Hostile input, round two (issue 14): the library side of each class ----------------------------

namespace {

// Runs `f` in a child process; returns its wait status and what it wrote to stderr.
template <typename F>
std::pair<int, std::string> in_child(F f) {
  const std::string err = tmp("child_stderr");
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The child is no test runner: default signal actions (doctest's crash handlers report a crash as a
    // test failure and carry on), its own stderr, no stdout.
    for (int sig : {SIGABRT, SIGSEGV, SIGFPE, SIGILL, SIGBUS, SIGTERM, SIGINT, SIGHUP}) std::signal(sig, SIG_DFL);
    if (!std::freopen(err.c_str(), "w", stderr) || !std::freopen("/dev/null", "w", stdout)) _exit(99);
    std::setvbuf(stderr, nullptr, _IONBF, 0);
    f();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {status, read_all(err)};
}

}  // namespace

TEST_CASE("security: value() of an error Result aborts with the message, never throws") {
  const auto child = in_child([] {
    ember::Result<std::string> r = ember::invalid_argument("token 7 is special");
    std::string v = r.value();  // a caller's bug
    std::fputs(v.c_str(), stdout);
  });
  const int status = child.first;
  const std::string& err = child.second;
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(contains(err, "value() of an error Result"));
  CHECK(contains(err, "token 7 is special"));
  CHECK_FALSE(contains(err, "bad_variant_access"));
  // A Result made from an ok Status is an error that says so, not a Result without a value.
  ember::Result<int> odd = ember::Status::Ok();
  CHECK_FALSE(odd.ok());
  CHECK(odd.status().code() == ember::StatusCode::kInternal);
  CHECK(contains(odd.status().message(), "ok Status without a value"));
}

TEST_CASE("security: read_file refuses FIFOs, devices and directories before blocking, and stops at its limit") {
  const std::string fifo = tmp("fifo"), dir = tmp("dir"), big = tmp("big.txt");
  std::remove(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);  // no writer: an open without O_NONBLOCK would block forever
  CHECK(contains(error_of(ember::read_file(fifo)), fifo + ": is not a regular file (a FIFO)"));
  CHECK(contains(load_error(fifo), "a FIFO"));
  CHECK(contains(error_of(ember::import_model(fifo + ".safetensors")), "no such file"));
  std::remove(fifo.c_str());
  CHECK(contains(error_of(ember::read_file("/dev/zero")), "/dev/zero: is not a regular file (a character device)"));
  CHECK(contains(load_error("/dev/zero"), "character device"));
  mkdir(dir.c_str(), 0700);
  CHECK(contains(error_of(ember::read_file(dir)), dir + ": is a directory"));
  CHECK(contains(error_of(ember::read_jsonl_dataset(dir)), "is a directory"));
  CHECK(error_of(ember::read_file(tmp("missing"))).find("no such file") != std::string::npos);
  CHECK(ember::read_file(tmp("missing")).status().code() == ember::StatusCode::kNotFound);
  write_all(big, std::string(1000, 'x'));
  REQUIRE(ember::read_file(big, 1000).ok());
  CHECK(ember::read_file(big, 1000)->size() == 1000);
  CHECK(contains(error_of(ember::read_file(big, 999)), "larger than the limit of 999 bytes"));
  // Files that report size 0 but hold data (procfs) are read to their end, and to no more than the limit.
  auto self = ember::read_file("/proc/self/status");
  REQUIRE(self.ok());
  CHECK(contains(*self, "Name:"));
  CHECK(contains(error_of(ember::read_file("/proc/self/status", 10)), "larger than the limit of 10 bytes"));
}

TEST_CASE("security: same_file sees one file through links, .. and names not yet created") {
  const std::string a = tmp("same_a"), link = tmp("same_link");
  write_all(a, "x");
  std::remove(link.c_str());
  REQUIRE(symlink(a.c_str(), link.c_str()) == 0);
  CHECK(ember::same_file(a, link));
  CHECK(ember::same_file(a, ember_test::temp_dir() + "/../" + ember_test::temp_dir().substr(1) + "/ember_security_same_a"));
  CHECK_FALSE(ember::same_file(a, tmp("same_b")));
  CHECK(ember::same_file(tmp("new_x"), ember_test::temp_dir() + "/./ember_security_new_x"));
  CHECK_FALSE(ember::same_file(tmp("new_x"), tmp("new_y")));
}

TEST_CASE("security: non-finite weights are refused when a model is written or read back, naming tensor and element") {
  ember::ModelSpec s = tiny_spec();
  set_f32(tensor(s, "h.0.ln_2.bias"), 3, std::numeric_limits<float>::quiet_NaN());
  const std::string p = tmp("nan_written.ember");
  CHECK(contains(error_of(ember::write_model_file(s, p)), "tensor 'h.0.ln_2.bias' holds NaN at element 3; a model needs finite weights"));
  REQUIRE(ember::write_model_file_unchecked(s, p).ok());  // a file from elsewhere
  CHECK(contains(error_of(ember::read_model_file(p)), "tensor 'h.0.ln_2.bias' holds NaN at element 3"));
  CHECK(contains(error_of(ember::import_model(p)), "holds NaN"));
  CHECK(contains(error_of(ember::load_model_spec(s, "spec")), "holds NaN"));
  set_f32(tensor(s, "h.0.ln_2.bias"), 3, 0.0f);
  set_f32(tensor(s, "wpe"), 5, -std::numeric_limits<float>::infinity());
  CHECK(contains(error_of(ember::write_model_file(s, p)), "tensor 'wpe' holds an infinity at element 5"));
}

TEST_CASE("security: perplexity of a model whose forward pass is NaN is an error naming the position") {
  ember::ModelSpec s = tiny_spec();
  set_f32(tensor(s, "wpe"), 5 * 8 + 1, std::numeric_limits<float>::quiet_NaN());  // position 5
  const std::string p = tmp("nan_ppl.ember");
  REQUIRE(ember::write_model_file_unchecked(s, p).ok());
  auto m = ember::Model::load(p);
  REQUIRE(m.ok());
  auto session = ember::Session::create(*m, {});
  REQUIRE(session.ok());
  // Positions 0-4 are finite, the NaN reaches 5 and every later one (through attention).
  const std::vector<int32_t> ids = {1, 2, 3, 1, 2, 4, 5, 6, 1, 2};
  const std::string e = error_of(ember::compute_perplexity(**session, ids, 8));
  CHECK(contains(e, "not finite"));
  CHECK(contains(e, "at token 5 of 10"));
  CHECK(contains(e, p));
  // Windows of 5 never reach position 5.
  auto ok = ember::compute_perplexity(**session, ids, 5);
  REQUIRE(ok.ok());
  CHECK(std::isfinite(ok->ppl));
}

TEST_CASE("security: a model from memory equals the model from its file, and hostile buffers are refused") {
  ember::ModelSpec s = tiny_spec();
  const std::string p = tmp("buffer.ember");
  REQUIRE(ember::write_model_file(s, p).ok());
  const std::string bytes = read_all(p);
  auto from_file = ember::Model::load(p);
  REQUIRE(from_file.ok());
  std::vector<float> logits[3];
  int k = 0;
  for (auto m : {*from_file, ember::Model::load_from_buffer(bytes.data() + 0, bytes.size(), "buf").value(),
                 ember::load_model_spec(s, "spec").value()}) {
    auto session = ember::Session::create(m, {});
    REQUIRE(session.ok());
    const std::vector<int32_t> ids = {1, 2, 3};
    REQUIRE((*session)->prefill(ids.data(), ids.size()).ok());
    logits[k++].assign((*session)->logits(), (*session)->logits() + 11);
  }
  CHECK(logits[0] == logits[1]);
  CHECK(logits[0] == logits[2]);
  // An odd address is fine (the model keeps an aligned copy); truncation and NULL are errors.
  std::string shifted = " " + bytes;
  CHECK(ember::Model::load_from_buffer(shifted.data() + 1, bytes.size(), "odd").ok());
  CHECK(contains(error_of(ember::Model::load_from_buffer(bytes.data(), bytes.size() - 100, "cut")), "cut"));
  CHECK(contains(error_of(ember::Model::load_from_buffer(nullptr, 100, "null")), "null buffer"));
  CHECK(contains(error_of(ember::Model::load_from_buffer(bytes.data(), 3, "tiny")), "too small"));
}

TEST_CASE("security: ids beyond the tokenizer decode to printable placeholders, and are special") {
  ember::ModelSpec s = tiny_spec();
  const ember::Tokenizer& tok = s.tokenizer;
  CHECK(tok.piece(3) == "b");
  CHECK_FALSE(tok.is_special(3));
  CHECK(tok.piece(11) == "<|token 11|>");  // a classifier's start token: n_vocab 13, tokenizer 11
  CHECK(tok.piece(-1) == "<|token -1|>");
  CHECK(tok.is_special(11));
  CHECK(tok.is_special(-1));
  CHECK_FALSE(tok.decode({1, 11}).ok());  // decode() stays strict
  ember::Tokenizer none;
  CHECK(none.piece(0) == "<|token 0|>");
}

TEST_CASE("security: SIGTERM, SIGINT and SIGHUP remove a temporary being written; SIGXFSZ becomes an error") {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    CAPTURE(sig);
    const std::string out = tmp("signalled.bin");
    write_all(out, "previous");
    const auto child = in_child([&] {
      ember::remove_temporaries_on_signals("writer");
      ember::AtomicFile f;
      if (!f.open(out).ok() || !f.write("partial", 7).ok()) _exit(98);
      raise(sig);
      _exit(97);  // not reached
    });
    const int status = child.first;
    const std::string& err = child.second;
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == sig);
    CHECK(contains(err, "writer: "));
    CHECK(contains(err, "removed the partly written output"));
    CHECK(read_all(out) == "previous");
    DIR* d = opendir(ember_test::temp_dir().c_str());
    REQUIRE(d);
    int temps = 0;
    while (const dirent* e = readdir(d)) temps += std::string(e->d_name).rfind("ember_security_signalled.bin.tmp.", 0) == 0;
    closedir(d);
    CHECK(temps == 0);
  }
  // Past `ulimit -f`: a write error with the usual message, the temporary removed, the process alive.
  const std::string out = tmp("xfsz.bin");
  write_all(out, "previous");
  const auto child = in_child([&] {
    ember::remove_temporaries_on_signals("writer");
    struct rlimit lim = {4096, 4096};
    setrlimit(RLIMIT_FSIZE, &lim);
    const std::string big(1 << 16, 'x');
    const ember::Status st = ember::write_file_atomic(out, big.data(), big.size());
    std::fputs(st.message().c_str(), stderr);
    _exit(st.ok() ? 1 : 0);
  });
  const int status = child.first;
  const std::string& err = child.second;
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CAPTURE(err);
  CHECK(contains(err, out + ": write failed (File too large); the previous file, if any, is unchanged"));
  CHECK(read_all(out) == "previous");
}

TEST_CASE("security: threads beyond the CPUs are capped unless oversubscribe is asked for") {
  auto m = ember::load_model_spec(tiny_spec(), "tiny");
  REQUIRE(m.ok());
  const size_t cpus = ember::available_cpus();
  REQUIRE(cpus >= 1);
  ember::SessionOptions so;
  so.n_threads = 64;
  auto capped = ember::Session::create(*m, so);
  REQUIRE(capped.ok());
  CHECK((*capped)->n_threads() == std::min<size_t>(cpus, 64));
  so.n_threads = 1;
  CHECK(ember::Session::create(*m, so).value()->n_threads() == 1);
  so.n_threads = static_cast<uint32_t>(cpus) + 1;
  so.oversubscribe = true;
  CHECK(ember::Session::create(*m, so).value()->n_threads() == cpus + 1);
}

TEST_CASE("security: token files: ids as text or uint16, errors naming the file and offset") {
  auto ok = ember::parse_token_ids("464, 2068\t1\r\n2147483647", "t");
  REQUIRE(ok.ok());
  CHECK(*ok == std::vector<int32_t>{464, 2068, 1, 2147483647});
  CHECK(contains(error_of(ember::parse_token_ids("1 2 x3", "t.ids")), "t.ids: unexpected character 'x' at offset 4"));
  CHECK(contains(error_of(ember::parse_token_ids("1 -2", "t.ids")), "unexpected character '-' at offset 2"));
  CHECK(contains(error_of(ember::parse_token_ids("2147483648", "t.ids")), "t.ids: id too large"));
  CHECK(ember::parse_token_ids("", "t")->empty());
  const std::string bin = tmp("val.bin");
  write_all(bin, std::string("\x01\x00\xff\xff", 4));
  auto b = ember::read_token_file(bin);
  REQUIRE(b.ok());
  CHECK(*b == std::vector<int32_t>{1, 65535});
  write_all(bin, "abc");
  CHECK(contains(error_of(ember::read_token_file(bin)), "3 bytes is not a whole number of uint16 token ids"));
  CHECK(contains(error_of(ember::read_token_file(ember_test::temp_dir())), "is a directory"));
}
