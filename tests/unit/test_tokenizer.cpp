// Tokenizer tests: GPT-2 BPE against published vectors and corpus counts, character vocabularies,
// UTF-8 streaming, and the errors of bad inputs and bad tokenizer files.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/convert.h"
#include "ember/tokenizer.h"
#include "skip.h"
#include "test_paths.h"
#include "tokenizer/pretokenize.h"

// Readable failure output for id lists.
namespace doctest {
template <>
struct StringMaker<std::vector<int32_t>> {
  static String convert(const std::vector<int32_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size() && i < 64; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    s += v.size() > 64 ? ", ... (" + std::to_string(v.size()) + " ids)]" : "]";
    return String(s.c_str());
  }
};
}  // namespace doctest

using ember::Tokenizer;
using ember::Utf8Stream;
using ember_test::data_dir;
using ember_test::exists;
using ember_test::shared_data_dir;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  REQUIRE(f.good());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The real GPT-2 tokenizer, loaded once for the whole suite.
const Tokenizer& gpt2() {
  static const ember::Result<Tokenizer> tok = ember::load_gpt2_tokenizer(
      data_dir() + "/gpt2/encoder.json", data_dir() + "/gpt2/vocab.bpe");
  REQUIRE_MESSAGE(tok.ok(), tok.status().message());
  return tok.value();
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = ember::detail::next_pretoken(text, pos);
    REQUIRE(end > pos);
    out.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// SHA-256 of token ids written as little-endian uint16 (nanoGPT's train.bin), to compare whole
// streams against the hashes in shared/data/SPLITS.md.
std::string sha256_u16(const std::vector<int32_t>& ids) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  std::string msg;
  for (int32_t id : ids) {
    msg += static_cast<char>(id & 0xFF);
    msg += static_cast<char>((id >> 8) & 0xFF);
  }
  const uint64_t bits = uint64_t{msg.size()} * 8;
  msg += '\x80';
  while (msg.size() % 64 != 56) msg += '\0';
  for (int i = 7; i >= 0; --i) msg += static_cast<char>((bits >> (8 * i)) & 0xFF);
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t off = 0; off < msg.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + off + 4 * i);
      w[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ch + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  char hex[65];
  for (int i = 0; i < 8; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
  return hex;
}

// GPT-2's byte-to-unicode spelling of one byte, UTF-8 encoded (for writing small vocab files).
std::string spell(unsigned char b) {
  int cp = b, extra = 0;
  const auto printable = [](int x) { return (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE; };
  if (!printable(b)) {
    for (int x = 0; x < b; ++x) extra += !printable(x);
    cp = 256 + extra;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A path in a temp directory for this process; the files and directory are removed at exit.
std::string scratch(const std::string& name) {
  struct Dir {
    std::string path = ember_test::temp_dir() + "/ember_test_tokenizer_" + std::to_string(getpid());
    std::vector<std::string> files;
    Dir() { ::mkdir(path.c_str(), 0700); }
    ~Dir() {
      for (const std::string& f : files) std::remove(f.c_str());
      ::rmdir(path.c_str());
    }
  };
  static Dir dir;
  dir.files.push_back(dir.path + "/" + name);
  return dir.files.back();
}

// Minimal GPT-2 style files: the 256 byte tokens (optionally without one), then `extra` tokens.
std::string small_vocab_json(const std::vector<std::string>& extra, int skip_byte = -1) {
  nlohmann::json j = nlohmann::json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) {
    if (b != skip_byte) j[spell(static_cast<unsigned char>(b))] = id++;
  }
  for (const std::string& t : extra) j[t] = id++;
  return j.dump();
}

std::vector<std::string> byte_tokens() {
  std::vector<std::string> t;
  for (int b = 0; b < 256; ++b) t.emplace_back(1, static_cast<char>(b));
  return t;
}

const char kShakespeareChars[] =
    "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

std::vector<std::string> shakespeare_symbols() {
  std::vector<std::string> s;
  for (const char* p = kShakespeareChars; *p; ++p) s.emplace_back(1, *p);
  return s;
}

}  // namespace

TEST_CASE("kind names and the empty tokenizer") {
  CHECK(std::string(ember::tokenizer_kind_name(ember::TokenizerKind::kNone)) == "none");
  CHECK(std::string(ember::tokenizer_kind_name(ember::TokenizerKind::kGpt2Bpe)) == "gpt2_bpe");
  CHECK(std::string(ember::tokenizer_kind_name(ember::TokenizerKind::kChars)) == "chars");
  Tokenizer t;
  CHECK(t.kind() == ember::TokenizerKind::kNone);
  CHECK(t.n_vocab() == 0);
  CHECK(t.eot_id() == -1);
  CHECK_FALSE(t.encode("hi").ok());
  CHECK_FALSE(t.decode({0}).ok());
  CHECK(t.token_bytes(0).empty());
  CHECK(t.tokens().empty());
  CHECK(t.merges().empty());
}

TEST_CASE("pre-tokenizer follows GPT-2's regex") {
  using V = std::vector<std::string>;
  CHECK(pieces("Hello world") == V{"Hello", " world"});
  CHECK(pieces("a   b") == V{"a", "  ", " b"});            // \s+(?!\S) leaves one space for " b"
  CHECK(pieces("a \nb") == V{"a", " ", "\n", "b"});         // only ' ' joins a following word
  CHECK(pieces("x  ") == V{"x", "  "});                     // trailing run is taken whole
  CHECK(pieces("I'm you'll he's 'S") == V{"I", "'m", " you", "'ll", " he", "'s", " '", "S"});
  CHECK(pieces("abc123 4?!x") == V{"abc", "123", " 4", "?!", "x"});
  CHECK(pieces(" ?'s") == V{" ?'", "s"});                   // contractions only start a match
  CHECK(pieces("\xC2\xA0\xC2\xA0x") == V{"\xC2\xA0", "\xC2\xA0", "x"});  // NBSP is \s, not ' '
  CHECK(pieces("\x1C" "a") == V{"\x1C", "a"});              // U+001C is not White_Space
  CHECK(pieces("Ünïcödé ½") == V{"Ünïcödé", " ½"});         // L*, and No counts as \p{N}
}

TEST_CASE("GPT-2 BPE: all test vectors encode and decode exactly") {
  const Tokenizer& tok = gpt2();
  CHECK(tok.kind() == ember::TokenizerKind::kGpt2Bpe);
  CHECK(tok.n_vocab() == 50257);
  CHECK(tok.eot_id() == 50256);
  CHECK(tok.merges().size() == 50000);
  CHECK(tok.token_bytes(50256) == "<|endoftext|>");
  CHECK(tok.token_bytes(198) == "\n");
  CHECK(tok.token_bytes(220) == " ");
  CHECK(tok.token_bytes(-1).empty());
  CHECK(tok.token_bytes(50257).empty());

  std::ifstream in(data_dir() + "/gpt2/test_vectors.jsonl");
  REQUIRE(in.good());
  std::string line;
  int n = 0, encode_ok = 0, decode_ok = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json v = nlohmann::json::parse(line);
    const std::string text = v.at("text");
    const std::vector<int32_t> ids = v.at("ids");
    ++n;
    CAPTURE(n);
    CAPTURE(text);
    const auto enc = tok.encode(text);
    REQUIRE_MESSAGE(enc.ok(), enc.status().message());
    CHECK(enc.value() == ids);
    encode_ok += enc.value() == ids;
    const auto dec = tok.decode(ids);
    REQUIRE(dec.ok());
    CHECK(dec.value() == text);
    decode_ok += dec.value() == text;
  }
  CHECK(n == 119);
  CHECK(encode_ok == 119);
  CHECK(decode_ok == 119);
}

TEST_CASE("GPT-2 BPE: special-token text is ordinary text") {
  const Tokenizer& tok = gpt2();
  const auto ids = tok.encode("<|endoftext|>");
  REQUIRE(ids.ok());
  CHECK(ids.value() == std::vector<int32_t>{27, 91, 437, 1659, 5239, 91, 29});
  const auto dec = tok.decode({50256});
  REQUIRE(dec.ok());
  CHECK(dec.value() == "<|endoftext|>");
  const auto empty = tok.encode("");
  REQUIRE(empty.ok());
  CHECK(empty.value().empty());
}

TEST_CASE("GPT-2 BPE: a tokenizer rebuilt from tokens()/merges() encodes the same") {
  const Tokenizer& tok = gpt2();
  auto copy = Tokenizer::gpt2_bpe(tok.tokens(), tok.merges(), tok.eot_id());
  REQUIRE_MESSAGE(copy.ok(), copy.status().message());
  const std::string text = "Rebuilt tokenizers, 🦙 and 中文, must agree:\n\n  ok?";
  CHECK(copy.value().encode(text).value() == tok.encode(text).value());
  Tokenizer moved = std::move(copy.value());
  CHECK(moved.n_vocab() == 50257);
}

TEST_CASE("GPT-2 BPE: concurrent encodes agree") {
  const Tokenizer& tok = gpt2();
  const std::string text = read_file(data_dir() + "/gpt2/test_vectors.jsonl");
  const auto expect = tok.encode(text);
  REQUIRE(expect.ok());
  std::vector<int32_t> a, b;
  std::thread t1([&] { a = tok.encode(text).value(); });
  std::thread t2([&] { b = tok.encode(text).value(); });
  t1.join();
  t2.join();
  CHECK(a == expect.value());
  CHECK(b == expect.value());
}

TEST_CASE("tinyshakespeare: BPE and char counts match nanoGPT") {
  const std::string path = shared_data_dir() + "/text/tinyshakespeare.txt";
  if (!ember_test::need_file(path, "tiny shakespeare")) return;
  const std::string text = read_file(path);
  REQUIRE(text.size() == 1115394);
  const size_t split = 1003854;
  const std::string_view train = std::string_view(text).substr(0, split);
  const std::string_view val = std::string_view(text).substr(split);

  SUBCASE("GPT-2 BPE") {
    const Tokenizer& tok = gpt2();
    const auto t0 = std::chrono::steady_clock::now();
    const auto tr = tok.encode(train);
    const auto va = tok.encode(val);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("tinyshakespeare BPE encode (1,115,394 bytes): " << secs * 1000 << " ms");
    REQUIRE(tr.ok());
    REQUIRE(va.ok());
    CHECK(tr.value().size() == 301966);
    CHECK(va.value().size() == 36059);
    const std::vector<int32_t> first16 = {5962, 22307, 25, 198, 8421, 356, 5120, 597,
                                          2252, 11,    3285, 502, 2740, 13,  198, 198};
    CHECK(std::vector<int32_t>(tr.value().begin(), tr.value().begin() + 16) == first16);
    CHECK(std::vector<int32_t>(va.value().begin(), va.value().begin() + 8) ==
          std::vector<int32_t>{30, 198, 198, 28934, 8895, 46, 25, 198});
    CHECK(sha256_u16(tr.value()) == "502a2bdc8210d1ac5d5674867cb74467dd31db575d25cf6dbb08c8bdbea8680f");
    CHECK(sha256_u16(va.value()) == "68a53422394c26a655ebe641f5c6f49888e8f4e45fe5d6f02abda63ba3ebd65b");
    CHECK(tok.decode(tr.value()).value() == train);
  }
  SUBCASE("characters") {
    auto tok = Tokenizer::chars(shakespeare_symbols());
    REQUIRE_MESSAGE(tok.ok(), tok.status().message());
    CHECK(tok.value().kind() == ember::TokenizerKind::kChars);
    CHECK(tok.value().n_vocab() == 65);
    const auto tr = tok.value().encode(train);
    const auto va = tok.value().encode(val);
    REQUIRE(tr.ok());
    REQUIRE(va.ok());
    CHECK(tr.value().size() == 1003854);
    CHECK(va.value().size() == 111540);
    CHECK(tok.value().encode("\n A a").value() == std::vector<int32_t>{0, 1, 13, 1, 39});
    CHECK(sha256_u16(tr.value()) == "6ec305602a99ac2802745a134e1f5e33e2231b4855525b00b9aebb730ac2626f");
    CHECK(sha256_u16(va.value()) == "d37d30cc0c8327c270d493299c3dca54135f6d5f1c9ef60cda78076e311204b1");
    CHECK(tok.value().decode(va.value()).value() == val);
  }
}

TEST_CASE("moby_dick and sotu: BPE counts and hashes match the references") {
  struct Corpus {
    const char* file;
    size_t split, train_tokens, val_tokens;
    const char *train_sha, *val_sha;
  };
  const Corpus corpora[] = {
      {"moby_dick.txt", 1094944, 263253, 30487,
       "08ed7438d30814a1e81e3a50326c74a0ac5f4f5cdd0ec1c534d0d7e8b69b91fb",
       "cd55178714360c551bc6dc4e4c8f40e892bb194fb0b45f92b1799c2addf4eb6e"},
      {"sotu.txt", 9694862, 1856959, 217329,
       "314b8cd85faba6c20e684e8d65bc4528a79e7f8ea99d10b2a8569f5f885649fd",
       "905e3b539843b38d4bfaafa28228f62e941882615198a1a930c7bf559a1f1c40"},
  };
  for (const Corpus& c : corpora) {
    const std::string path = shared_data_dir() + "/text/" + c.file;
    if (!ember_test::need_file(path, "a shared corpus")) continue;
    CAPTURE(c.file);
    const std::string text = read_file(path);
    REQUIRE(text.size() > c.split);
    const auto tr = gpt2().encode(std::string_view(text).substr(0, c.split));
    const auto va = gpt2().encode(std::string_view(text).substr(c.split));
    REQUIRE(tr.ok());
    REQUIRE(va.ok());
    CHECK(tr.value().size() == c.train_tokens);
    CHECK(va.value().size() == c.val_tokens);
    CHECK(sha256_u16(tr.value()) == c.train_sha);
    CHECK(sha256_u16(va.value()) == c.val_sha);
  }
}

TEST_CASE("sha256 helper matches a known digest") {
  // Empty input, and the 4 bytes 01 00 02 00 (Python: hashlib.sha256(bytes([1, 0, 2, 0]))).
  CHECK(sha256_u16({}) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_u16({1, 2}) == "7b11c1133330cd161071bf23a0c9b6ce5320a8f3a0f83620035a72be46df4104");
}

TEST_CASE("BPE merges like encoder.py on small vocabularies") {
  SUBCASE("chained merges and overlapping pairs") {
    std::vector<std::string> t = byte_tokens();
    t.push_back("ab");   // 256
    t.push_back("abc");  // 257
    t.push_back("aa");   // 258
    auto tok = Tokenizer::gpt2_bpe(t, {{'a', 'b'}, {256, 'c'}, {'a', 'a'}}, -1);
    REQUIRE_MESSAGE(tok.ok(), tok.status().message());
    CHECK(tok.value().encode("abcab").value() == std::vector<int32_t>{257, 256});
    CHECK(tok.value().encode("aaa").value() == std::vector<int32_t>{258, 'a'});  // left to right
    CHECK(tok.value().encode("ab ab").value() == std::vector<int32_t>{256, ' ', 256});
  }
  SUBCASE("all occurrences of a rank merge before a lower rank that they create") {
    // Rank 0 (bc, b) only becomes possible after rank 1 (b, c). encoder.py merges every "b c" first,
    // giving [bc, bc]; merging greedily one pair at a time would give [bcb, c].
    std::vector<std::string> t = byte_tokens();
    t.push_back("bc");   // 256
    t.push_back("bcb");  // 257
    auto tok = Tokenizer::gpt2_bpe(t, {{256, 'b'}, {'b', 'c'}}, -1);
    REQUIRE(tok.ok());
    CHECK(tok.value().encode("bcbc").value() == std::vector<int32_t>{256, 256});
    CHECK(tok.value().encode("bcb").value() == std::vector<int32_t>{257});
  }
  SUBCASE("the end-of-text token is never produced from text") {
    std::vector<std::string> t = byte_tokens();
    t.push_back("ab");  // 256, and also the eot token's bytes
    auto tok = Tokenizer::gpt2_bpe(t, {}, 256);
    REQUIRE(tok.ok());
    CHECK(tok.value().encode("ab").value() == std::vector<int32_t>{'a', 'b'});
  }
}

TEST_CASE("gpt2_bpe rejects inconsistent vocabularies, naming the entry") {
  std::vector<std::string> t = byte_tokens();
  t.push_back("ab");  // 256
  auto err = [](const ember::Result<Tokenizer>& r) {
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ember::StatusCode::kInvalidArgument);
    return r.status().message();
  };
  {
    std::vector<std::string> missing = t;
    missing[10] = "xy";
    CHECK(contains(err(Tokenizer::gpt2_bpe(missing, {}, -1)), "byte 0x0A"));
  }
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {{'a', 300}}, -1)), "merge 0"));
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {{'a', 'b'}, {'x', 'y'}}, -1)), "merge 1"));
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {{'a', 'b'}, {'x', 'y'}}, -1)), "'xy' is not a token"));
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {{'a', 'b'}, {'a', 'b'}}, -1)), "repeats merge 0"));
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {}, 257)), "eot_id 257"));
  CHECK(contains(err(Tokenizer::gpt2_bpe(t, {}, -2)), "eot_id -2"));
  {
    std::vector<std::string> dup = t;
    dup.push_back("ab");
    CHECK(contains(err(Tokenizer::gpt2_bpe(dup, {}, -1)), "token 257 'ab' duplicates token 256"));
  }
  CHECK(contains(err(Tokenizer::gpt2_bpe({}, {}, -1)), "empty"));
}

TEST_CASE("encode and decode reject bad input without crashing") {
  const Tokenizer& tok = gpt2();
  const auto bad = tok.encode(std::string("hello\xC3(world", 12));
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.status().message(), "invalid UTF-8 at byte offset 5"));
  CHECK_FALSE(tok.encode(std::string("\xFF")).ok());
  CHECK_FALSE(tok.encode(std::string("abc\xE2\x82", 5)).ok());   // truncated at the end
  CHECK_FALSE(tok.encode(std::string("\xED\xA0\x80", 3)).ok());  // surrogate
  CHECK(tok.encode(std::string("a\0b", 3)).value() == std::vector<int32_t>{64, 188, 65});

  const auto out = tok.decode({15496, 50257});
  REQUIRE_FALSE(out.ok());
  CHECK(contains(out.status().message(), "token id 50257 at position 1"));
  CHECK_FALSE(tok.decode({-1}).ok());
}

TEST_CASE("character vocabulary") {
  auto tok = Tokenizer::chars({"a", "b", "\xC3\xA9", "\xF0\x9F\xA6\x99"});  // a b é 🦙
  REQUIRE(tok.ok());
  CHECK(tok.value().eot_id() == -1);
  CHECK(tok.value().encode("ab\xC3\xA9\xF0\x9F\xA6\x99" "a").value() == std::vector<int32_t>{0, 1, 2, 3, 0});
  CHECK(tok.value().decode({3, 2, 1}).value() == "\xF0\x9F\xA6\x99\xC3\xA9" "b");
  const auto unknown = tok.value().encode("ab\xC3\xBC");  // ü
  REQUIRE_FALSE(unknown.ok());
  CHECK(contains(unknown.status().message(), "'\xC3\xBC' (U+00FC) at byte offset 2"));
  const auto tab = tok.value().encode("a\tb");
  REQUIRE_FALSE(tab.ok());
  CHECK(contains(tab.status().message(), "(U+0009) at byte offset 1"));
  CHECK_FALSE(tok.value().encode("a\xC3").ok());

  CHECK(contains(Tokenizer::chars({"a", "bc"}).status().message(), "symbol 1 'bc'"));
  CHECK(contains(Tokenizer::chars({"a", ""}).status().message(), "symbol 1"));
  CHECK(contains(Tokenizer::chars({"a", "b", "a"}).status().message(), "symbol 2 'a' duplicates symbol 0"));
  CHECK(contains(Tokenizer::chars({"\xC3\xA9", "\xC3\xA9"}).status().message(), "duplicates symbol 0"));
  CHECK_FALSE(Tokenizer::chars({std::string("\xFF")}).ok());
  CHECK_FALSE(Tokenizer::chars({}).ok());
}

TEST_CASE("Utf8Stream never emits a broken sequence") {
  SUBCASE("a character split across pushes") {
    Utf8Stream s;
    CHECK(s.push("a\xE2") == "a");
    CHECK(s.push("\x82") == "");
    CHECK(s.push("\xAC!") == "\xE2\x82\xAC!");  // €
    CHECK(s.flush() == "");
    CHECK(s.push("\xF0") == "");
    CHECK(s.push("\x9F\xA6") == "");
    CHECK(s.push("\x99") == "\xF0\x9F\xA6\x99");
  }
  SUBCASE("flush of a dangling lead byte gives U+FFFD") {
    Utf8Stream s;
    CHECK(s.push("ok\xF0\x9F") == "ok");
    CHECK(s.flush() == "\xEF\xBF\xBD");
    CHECK(s.flush() == "");
    CHECK(s.push("x") == "x");  // nothing left over
  }
  SUBCASE("invalid bytes in the middle become U+FFFD, one per maximal subpart") {
    Utf8Stream s;
    CHECK(s.push("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
    CHECK(s.push("\xE2\x82" "c") == "\xEF\xBF\xBD" "c");  // truncated sequence: one U+FFFD
    CHECK(s.push("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: three
    CHECK(s.push("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
    CHECK(s.flush() == "");
  }
  SUBCASE("token-by-token decode of emoji and CJK vectors equals decode()") {
    const Tokenizer& tok = gpt2();
    std::ifstream in(data_dir() + "/gpt2/test_vectors.jsonl");
    std::string line;
    int streamed = 0, partial_tokens = 0;
    while (std::getline(in, line)) {
      const nlohmann::json v = nlohmann::json::parse(line);
      const std::string text = v.at("text");
      if (!contains(text, "\xF0\x9F") && !contains(text, "\xE4\xB8")) continue;  // emoji / CJK
      const std::vector<int32_t> ids = v.at("ids");
      Utf8Stream s;
      std::string joined;
      for (int32_t id : ids) {
        partial_tokens += !ember::is_valid_utf8(tok.token_bytes(id));
        const std::string piece = s.push(tok.token_bytes(id));
        CHECK(ember::is_valid_utf8(piece));
        joined += piece;
      }
      joined += s.flush();
      CAPTURE(text);
      CHECK(joined == tok.decode(ids).value());
      ++streamed;
    }
    CHECK(streamed >= 10);
    CHECK(partial_tokens > 0);  // the test really exercised split sequences
  }
}

TEST_CASE("is_valid_utf8 reports the first bad byte") {
  size_t off = 99;
  CHECK(ember::is_valid_utf8(""));
  CHECK(ember::is_valid_utf8("plain ascii, long enough for the 8-byte fast path"));
  CHECK(ember::is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  CHECK_FALSE(ember::is_valid_utf8("\xF4\x90\x80\x80", &off));  // > U+10FFFF
  CHECK(off == 0);
  CHECK_FALSE(ember::is_valid_utf8("0123456789\xC0\x80", &off));  // overlong NUL
  CHECK(off == 10);
  CHECK_FALSE(ember::is_valid_utf8("ab\xE2\x82", &off));
  CHECK(off == 2);
  CHECK_FALSE(ember::is_valid_utf8("\xC3\xA9\x80", &off));  // stray continuation
  CHECK(off == 2);
}

TEST_CASE("is_valid_utf8 agrees with decoding and checking the shortest form, for every lead and second byte") {
  // The oracle decodes by arithmetic (length from the lead byte's high bits, 6 bits per continuation
  // byte) and then applies the rules: the shortest encoding of a scalar value <= U+10FFFF that is not a
  // surrogate. ember checks Unicode's table of well-formed byte ranges instead; both must agree on every
  // lead byte x second byte (overlongs of every length, surrogates, > U+10FFFF, the ranges' edges), with
  // 0x80 or 0xBF as the remaining bytes, alone and after a prefix that takes the 8-byte ASCII path.
  auto oracle = [](const std::string& t) {
    const auto b = [&](size_t i) { return static_cast<unsigned char>(t[i]); };
    const size_t len = b(0) < 0x80 ? 1 : b(0) < 0xC0 ? 0 : b(0) < 0xE0 ? 2 : b(0) < 0xF0 ? 3 : b(0) < 0xF8 ? 4 : 0;
    if (len == 0 || t.size() != len) return false;
    uint32_t cp = len == 1 ? b(0) : b(0) & (0x7F >> len);
    for (size_t i = 1; i < len; ++i) {
      if ((b(i) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b(i) & 0x3F);
    }
    const uint32_t shortest = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    return cp >= shortest && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  };
  size_t checked = 0, valid_multi = 0;
  for (int b0 = 0; b0 < 256; ++b0)
    for (int b1 = 0; b1 < 256; ++b1)
      for (unsigned char rest : {0x80, 0xBF}) {
        const unsigned char lead = static_cast<unsigned char>(b0);
        const size_t len = lead < 0x80 ? 1 : lead >= 0xC0 && lead < 0xE0 ? 2 : lead >= 0xE0 && lead < 0xF0 ? 3 : lead >= 0xF0 && lead < 0xF8 ? 4 : 2;
        std::string t(1, static_cast<char>(b0));
        if (len > 1) t += static_cast<char>(b1);
        while (t.size() < len) t += static_cast<char>(rest);
        const bool want = oracle(t);
        CAPTURE(b0);
        CAPTURE(b1);
        CHECK(ember::is_valid_utf8(t) == want);
        CHECK(ember::is_valid_utf8("0123456789" + t) == want);
        ++checked;
        valid_multi += want && b0 >= 0x80;
      }
  MESSAGE(checked << " sequences, " << valid_multi << " valid multi-byte ones");
  // Table 3-7 counted by hand, lead x second byte (x 2 for the two fillers): C2-DF x 64 = 1920;
  // E0 x 32 + E1-EC x 64 + ED x 32 + EE-EF x 64 = 960; F0 x 48 + F1-F3 x 64 + F4 x 16 = 256.
  CHECK(valid_multi == 2 * (1920 + 960 + 256));
}

TEST_CASE("load_gpt2_tokenizer errors name the file and entry") {
  const std::string vocab = scratch("vocab.json"), merges = scratch("merges.txt");
  const std::string g = spell(' ');  // "Ġ"
  write_file(vocab, small_vocab_json({"ab", g + "a"}));

  SUBCASE("a small valid pair loads") {
    write_file(merges, "#version: 0.2\na b\n" + g + " a\n");
    auto tok = ember::load_gpt2_tokenizer(vocab, merges);
    REQUIRE_MESSAGE(tok.ok(), tok.status().message());
    CHECK(tok.value().n_vocab() == 258);
    CHECK(tok.value().eot_id() == -1);
    CHECK(tok.value().token_bytes(257) == " a");
    CHECK(tok.value().encode("ab a").value() == std::vector<int32_t>{256, 257});
  }
  SUBCASE("CRLF merges without a header") {
    write_file(merges, "a b\r\n" + g + " a\r\n");
    CHECK(ember::load_gpt2_tokenizer(vocab, merges).ok());
  }
  SUBCASE("missing file") {
    const auto r = ember::load_gpt2_tokenizer(scratch("nope.json"), merges);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ember::StatusCode::kNotFound);
    CHECK(contains(r.status().message(), "nope.json"));
    write_file(merges, "a b\n");
    const auto r2 = ember::load_gpt2_tokenizer(vocab, scratch("nope.txt"));
    REQUIRE_FALSE(r2.ok());
    CHECK(contains(r2.status().message(), "nope.txt"));
  }
  SUBCASE("malformed JSON") {
    const std::string bad = scratch("bad.json");
    write_file(bad, "{\"a\": 0, \"b\": ");
    const auto r = ember::load_gpt2_tokenizer(bad, merges);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ember::StatusCode::kInvalidFile);
    CHECK(contains(r.status().message(), "bad.json"));
    CHECK(contains(r.status().message(), "malformed JSON"));
    write_file(bad, "[1, 2]");
    CHECK(contains(ember::load_gpt2_tokenizer(bad, merges).status().message(), "bad.json"));
    write_file(bad, "{\"a\": \"x\"}");
    CHECK(contains(ember::load_gpt2_tokenizer(bad, merges).status().message(), "bad.json entry 'a'"));
    write_file(bad, "{\"a\": 0, \"b\": 0}");
    CHECK(contains(ember::load_gpt2_tokenizer(bad, merges).status().message(), "used twice"));
    write_file(bad, "{\"a\": 0, \" \": 1}");  // a raw space is not a GPT-2 spelling
    CHECK(contains(ember::load_gpt2_tokenizer(bad, merges).status().message(), "entry ' '"));
  }
  SUBCASE("merges line referencing an unknown token") {
    write_file(merges, "#version: 0.2\na b\n" + g + " a\nx yz\n");
    const auto r = ember::load_gpt2_tokenizer(vocab, merges);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ember::StatusCode::kInvalidFile);
    CHECK(contains(r.status().message(), "merges.txt line 4: token 'yz' not in vocabulary"));
  }
  SUBCASE("merges line whose result is not a token") {
    write_file(merges, "#version: 0.2\nb a\n");
    CHECK(contains(ember::load_gpt2_tokenizer(vocab, merges).status().message(),
                   "merges.txt line 2: merged token 'ba' not in vocabulary"));
  }
  SUBCASE("malformed merges line") {
    write_file(merges, "#version: 0.2\nab\n");
    CHECK(contains(ember::load_gpt2_tokenizer(vocab, merges).status().message(), "merges.txt line 2"));
    write_file(merges, "a b c\n");
    CHECK(contains(ember::load_gpt2_tokenizer(vocab, merges).status().message(), "merges.txt line 1"));
  }
  SUBCASE("vocabulary missing a byte token") {
    const std::string holes = scratch("holes.json");
    write_file(holes, small_vocab_json({}, '\n'));
    write_file(merges, "#version: 0.2\n");
    const auto r = ember::load_gpt2_tokenizer(holes, merges);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.status().message(), "holes.json"));
    CHECK(contains(r.status().message(), "byte 0x0A"));
  }
  SUBCASE("<|endoftext|> becomes eot_id") {
    write_file(vocab, small_vocab_json({"<|endoftext|>"}));
    write_file(merges, "#version: 0.2\n");
    auto tok = ember::load_gpt2_tokenizer(vocab, merges);
    REQUIRE(tok.ok());
    CHECK(tok.value().eot_id() == 256);
    CHECK(tok.value().encode("<|endoftext|>").value().size() == 13);
  }
}

TEST_CASE("load_char_tokenizer accepts arrays, maps and nanoGPT meta") {
  const std::string path = scratch("chars.json");
  write_file(path, nlohmann::json(shakespeare_symbols()).dump());
  auto arr = ember::load_char_tokenizer(path);
  REQUIRE_MESSAGE(arr.ok(), arr.status().message());
  CHECK(arr.value().n_vocab() == 65);
  CHECK(arr.value().encode("\n A a").value() == std::vector<int32_t>{0, 1, 13, 1, 39});

  write_file(path, R"({"b": 1, "a": 0, "é": 2})");
  auto map = ember::load_char_tokenizer(path);
  REQUIRE(map.ok());
  CHECK(map.value().encode("abé").value() == std::vector<int32_t>{0, 1, 2});

  write_file(path, R"({"vocab_size": 2, "itos": {"0": "x", "1": "y"}, "stoi": {"x": 0, "y": 1}})");
  auto meta = ember::load_char_tokenizer(path);
  REQUIRE(meta.ok());
  CHECK(meta.value().encode("yx").value() == std::vector<int32_t>{1, 0});
  write_file(path, R"({"itos": {"1": "y", "0": "x"}})");
  auto itos = ember::load_char_tokenizer(path);
  REQUIRE(itos.ok());
  CHECK(itos.value().encode("yx").value() == std::vector<int32_t>{1, 0});

  const auto missing = ember::load_char_tokenizer(scratch("missing_chars.json"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == ember::StatusCode::kNotFound);
  CHECK(contains(missing.status().message(), "missing_chars.json"));
  write_file(path, "[\"a\", ");
  CHECK(contains(ember::load_char_tokenizer(path).status().message(), "chars.json: malformed JSON"));
  write_file(path, R"(["a", "bc"])");
  CHECK(contains(ember::load_char_tokenizer(path).status().message(), "symbol 1 'bc'"));
  write_file(path, R"(["a", 3])");
  CHECK(contains(ember::load_char_tokenizer(path).status().message(), "chars.json entry 1"));
  write_file(path, R"({"a": 0, "b": 5})");
  CHECK(contains(ember::load_char_tokenizer(path).status().message(), "chars.json entry 'b'"));
  write_file(path, "42");
  CHECK_FALSE(ember::load_char_tokenizer(path).ok());
}
