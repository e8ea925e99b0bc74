// Byte-level BPE training (include/ember/bpe_trainer.h): against an independent Python trainer
// (tests/train/make_bpe_golden.py, output in tests/data/train/bpe/), and by its properties: exact vocabulary
// size, byte fallback and exact round trips of arbitrary UTF-8, the first merge is the most frequent pair,
// determinism, errors. Then ember-train pretrain --vocab bpe / gpt2 end to end, several --data files, and a
// BPE model run by the tools, quantized, fine-tuned on Unicode text and classified by ember-classify.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/bpe_trainer.h"
#include "ember/convert.h"
#include "ember/model.h"
#include "tool_runner.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string golden_dir() { return ember_test::data_dir() + "/train/bpe"; }

// One code point as UTF-8.
std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Random valid UTF-8: ASCII, whitespace and punctuation runs, contractions, Latin-1, Greek, CJK, emoji,
// unassigned and private-use code points, the whole range.
std::string random_utf8(std::mt19937& rng, size_t n) {
  static const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0x00, 0x1F}, {0xA0, 0xFF}, {0x370, 0x3FF}, {0x4E00, 0x9FFF},
      {0x1F600, 0x1F64F}, {0xE000, 0xF8FF}, {0x80, 0xD7FF}, {0xE000, 0x10FFFF}};
  static const char* pieces[] = {"'s", "'ll", " the", "  ", " \n", "\n\n", "'", "12", " ?!", "\xC2\xA0"};
  std::string s;
  while (s.size() < n) {
    const uint32_t k = rng() % 14;
    if (k >= 10) {
      s += pieces[rng() % 10];
    } else {
      const auto [lo, hi] = ranges[k];
      s += utf8(lo + rng() % (hi - lo + 1));
    }
  }
  return s;
}

}  // namespace

TEST_CASE("train_bpe reproduces the independent Python trainer: tokens, merges, statistics, encoding") {
  const nlohmann::json meta = nlohmann::json::parse(slurp(golden_dir() + "/meta.json"));
  const std::string corpus = slurp(golden_dir() + "/corpus.txt");
  ember::BpeTrainOptions o;
  o.vocab_size = meta["vocab_size"].get<uint32_t>();
  ember::BpeTrainStats st;
  auto tok = ember::train_bpe({corpus}, o, &st);
  REQUIRE_MESSAGE(tok.ok(), tok.status().message());
  CHECK(tok->n_vocab() == static_cast<int32_t>(o.vocab_size));
  CHECK(tok->eot_id() == static_cast<int32_t>(o.vocab_size) - 1);
  CHECK(st.pieces == meta["pieces"].get<uint64_t>());
  CHECK(st.unique_pieces == meta["unique_pieces"].get<uint64_t>());
  CHECK(st.merges == meta["merges"].get<uint64_t>());
  CHECK(st.tokens == meta["tokens"].get<uint64_t>());
  CHECK(st.last_count == meta["last_merge_count"].get<uint64_t>());

  // The golden in GPT-2's own file format (byte-to-unicode spelling), read by ember's GPT-2 loader.
  auto gold = ember::load_gpt2_tokenizer(golden_dir() + "/encoder.json", golden_dir() + "/vocab.bpe");
  REQUIRE_MESSAGE(gold.ok(), gold.status().message());
  CHECK(gold->eot_id() == tok->eot_id());
  REQUIRE(gold->tokens().size() == tok->tokens().size());
  size_t token_diffs = 0, merge_diffs = 0;
  for (size_t i = 0; i < tok->tokens().size(); ++i) token_diffs += gold->tokens()[i] != tok->tokens()[i];
  REQUIRE(gold->merges().size() == tok->merges().size());
  for (size_t i = 0; i < tok->merges().size(); ++i) {
    if (gold->merges()[i] != tok->merges()[i]) {
      if (merge_diffs++ == 0) MESSAGE("first differing merge: rank " << i);
    }
  }
  CHECK(token_diffs == 0);
  CHECK(merge_diffs == 0);

  // Encoding the training text with the result: GPT-2's encoder.py algorithm in Python gave these ids,
  // and their number is the training segmentation's length.
  std::vector<int32_t> want;
  std::istringstream ids(slurp(golden_dir() + "/tokens.txt"));
  for (int32_t id; ids >> id;) want.push_back(id);
  auto got = tok->encode(corpus);
  REQUIRE(got.ok());
  CHECK(*got == want);
  CHECK(got->size() == st.tokens);
  CHECK(tok->decode(*got).value() == corpus);
}

TEST_CASE("train_bpe: exact vocabulary size, the most frequent pair first, determinism, byte fallback") {
  const std::string corpus = slurp(golden_dir() + "/corpus.txt");
  for (uint32_t n : {256u, 257u, 258u, 300u, 556u}) {
    for (bool eot : {false, true}) {
      if (n == 256 && eot) continue;
      ember::BpeTrainOptions o;
      o.vocab_size = n;
      o.end_of_text = eot;
      auto tok = ember::train_bpe({corpus}, o);
      REQUIRE_MESSAGE(tok.ok(), tok.status().message());
      CHECK(tok->n_vocab() == static_cast<int32_t>(n));
      CHECK(tok->eot_id() == (eot ? static_cast<int32_t>(n) - 1 : -1));
      for (int b = 0; b < 256; ++b) CHECK(tok->tokens()[static_cast<size_t>(b)] == std::string(1, static_cast<char>(b)));
    }
  }

  // The first merge is the most frequent adjacent pair, counted here by brute force over pairs of ASCII
  // letters (two adjacent letters are always in one pre-tokenizer piece); in this text that pair ("he")
  // is also the most frequent pair of all, with the Python trainer's count.
  ember::BpeTrainOptions o;
  o.vocab_size = 4 + 256 + 1;
  ember::BpeTrainStats st;
  auto tok = ember::train_bpe({corpus}, o, &st);
  REQUIRE(tok.ok());
  {
    const nlohmann::json meta = nlohmann::json::parse(slurp(golden_dir() + "/meta.json"));
    std::map<std::pair<int, int>, int64_t> counts;
    auto letter = [](unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    for (size_t i = 0; i + 1 < corpus.size(); ++i) {
      const auto a = static_cast<unsigned char>(corpus[i]), b = static_cast<unsigned char>(corpus[i + 1]);
      if (letter(a) && letter(b)) ++counts[{a, b}];
    }
    auto best = std::max_element(counts.begin(), counts.end(), [](const auto& x, const auto& y) {
      return x.second != y.second ? x.second < y.second : x.first > y.first;
    });
    CHECK(tok->merges()[0] == std::make_pair(best->first.first, best->first.second));
    CHECK(best->second == meta["first_merge_counts"][0].get<int64_t>());
    CHECK(st.last_count <= static_cast<uint64_t>(best->second));
  }

  // Deterministic, and independent of the order of the texts (pieces are counted, never ordered).
  std::vector<std::string> parts;
  for (size_t p = 0; p < corpus.size();) {
    size_t q = corpus.find('\n', p);
    q = q == std::string::npos ? corpus.size() : q + 1;
    parts.push_back(corpus.substr(p, q - p));
    p = q;
  }
  std::vector<std::string_view> fwd(parts.begin(), parts.end()), rev(parts.rbegin(), parts.rend());
  ember::BpeTrainOptions o2;
  o2.vocab_size = 450;
  auto t1 = ember::train_bpe(fwd, o2), t2 = ember::train_bpe(fwd, o2), t3 = ember::train_bpe(rev, o2);
  REQUIRE((t1.ok() && t2.ok() && t3.ok()));
  CHECK(t1->tokens() == t2->tokens());
  CHECK(t1->merges() == t2->merges());
  CHECK(t1->tokens() == t3->tokens());
  CHECK(t1->merges() == t3->merges());

  // Byte fallback: any valid UTF-8, seen in training or not, round-trips exactly.
  std::mt19937 rng(11);
  for (int k = 0; k < 300; ++k) {
    const std::string s = random_utf8(rng, 1 + rng() % 200);
    REQUIRE(ember::is_valid_utf8(s));
    auto ids = t1->encode(s);
    REQUIRE(ids.ok());
    auto back = t1->decode(*ids);
    REQUIRE(back.ok());
    CHECK(*back == s);
    for (int32_t id : *ids) CHECK(id != t1->eot_id());
  }
  // Trained on random Unicode itself (multi-byte tokens that split code points), still exact.
  std::string noise = random_utf8(rng, 20000);
  o2.vocab_size = 1500;
  auto tn = ember::train_bpe({noise}, o2);
  REQUIRE_MESSAGE(tn.ok(), tn.status().message());
  for (int k = 0; k < 100; ++k) {
    const std::string s = random_utf8(rng, 1 + rng() % 300);
    CHECK(tn->decode(tn->encode(s).value()).value() == s);
  }
}

TEST_CASE("train_bpe errors name the problem") {
  ember::BpeTrainOptions o;
  o.vocab_size = 256;
  auto r = ember::train_bpe({"hello"}, o);  // 256 + end of text needs 257
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("vocab_size 256") != std::string::npos);
  o.vocab_size = 1000;
  r = ember::train_bpe({"hello world, hello world"}, o);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("runs out of pairs") != std::string::npos);
  r = ember::train_bpe({"fine", std::string_view("bad \xff byte", 10)}, o);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("text 1 is not valid UTF-8 (byte offset 4)") != std::string::npos);
  o.vocab_size = 1u << 25;
  CHECK(!ember::train_bpe({"x"}, o).ok());
}

// ---- ember-train with BPE vocabularies ---------------------------------------------------------------

namespace {
struct Train : ember_test::ToolRunner {
  Train() : ToolRunner("ember-train", "ember_train_bpe") {}
};
// "N train / M val tokens" from ember-train's data line.
std::pair<size_t, size_t> token_counts(const std::string& err) {
  const size_t at = err.find(" train / ");
  REQUIRE(at != std::string::npos);
  size_t b = err.rfind(' ', at - 1) + 1;
  return {std::stoul(err.substr(b, at - b)), std::stoul(err.substr(at + 9))};
}
}  // namespace

TEST_CASE("ember-train pretrain --vocab bpe: several files, the vocabulary from the train parts, a model the tools run") {
  Train tool;
  if (!ember_test::need_tool(tool)) return;
  for (const char* t : {"ember-generate", "ember-perplexity", "ember-quantize", "ember-classify"})
    if (!ember_test::need_tool(t)) return;
  const std::string D = tool.dir;
  std::mt19937 rng(3);
  std::string a, b;
  for (int i = 0; i < 120; ++i) a += "The quick brown fox jumps over the lazy dog, " + std::to_string(i % 9) + " times.\n";
  for (int i = 0; i < 80; ++i) b += "Zürich café — naïve crème brûlée; 東京は大きい " + std::to_string(i % 5) + " 😀.\n";
  std::ofstream(D + "/a.txt") << a;
  std::ofstream(D + "/b.txt") << b;
  const std::string common = "pretrain --data " + D + "/a.txt --data " + D + "/b.txt --vocab bpe --vocab-size 300 --n-layer 1 "
                             "--n-head 2 --n-embd 16 --block 16 --batch 4 --eval-every 5 --eval-iters 2 --threads 2 --iters 10 ";
  REQUIRE(tool.run(common + "--out " + D + "/m.ember") == 0);
  const std::string err = tool.err();
  CHECK(err.find("byte-level BPE learned from") != std::string::npos);

  auto spec = ember::read_model_file(D + "/m.ember");
  REQUIRE(spec.ok());
  const ember::Tokenizer& tok = spec->tokenizer;
  CHECK(tok.kind() == ember::TokenizerKind::kGpt2Bpe);
  CHECK(tok.n_vocab() == 300);
  CHECK(spec->config.n_vocab == 300);
  CHECK(spec->metadata.at("train.data") == D + "/a.txt," + D + "/b.txt");

  // The vocabulary is the one learned from the train parts only (first 90% of each file's characters),
  // and the streams are those parts encoded per file, joined by <|endoftext|>.
  auto cut = [](const std::string& s) {
    size_t chars = 0;
    for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
    size_t seen = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
      if (seen++ == chars * 9 / 10) return i;
    }
    return s.size();
  };
  const size_t ca = cut(a), cb = cut(b);
  ember::BpeTrainOptions o;
  o.vocab_size = 300;
  auto mine = ember::train_bpe({std::string_view(a).substr(0, ca), std::string_view(b).substr(0, cb)}, o);
  REQUIRE(mine.ok());
  CHECK(mine->tokens() == tok.tokens());
  CHECK(mine->merges() == tok.merges());
  const auto [n_train, n_val] = token_counts(err);
  CHECK(n_train == tok.encode(a.substr(0, ca))->size() + 1 + tok.encode(b.substr(0, cb))->size());
  CHECK(n_val == tok.encode(a.substr(ca))->size() + 1 + tok.encode(b.substr(cb))->size());

  // The runtime tools take it as it is, with text it never saw.
  auto model = ember::Model::load(D + "/m.ember");
  REQUIRE(model.ok());
  ember_test::ToolRunner gen("ember-generate", "ember_train_bpe_gen");
  CHECK(gen.run("-m " + D + "/m.ember -p 'Ж👩' -n 4 --seed 1") == 0);
  ember_test::ToolRunner ppl("ember-perplexity", "ember_train_bpe_ppl");
  CHECK(ppl.run("-m " + D + "/m.ember -f " + D + "/b.txt") == 0);
  ember_test::ToolRunner quant("ember-quantize", "ember_train_bpe_q");
  CHECK(quant.run(D + "/m.ember " + D + "/m8.ember --calib " + D + "/b.txt") == 0);
  auto q = ember::Model::load(D + "/m8.ember");
  REQUIRE(q.ok());
  CHECK((*q)->tokenizer().tokens() == tok.tokens());
  CHECK(gen.run("-m " + D + "/m8.ember -p 'Ж👩' -n 4 --seed 1") == 0);

  // --resume keeps the learned vocabulary (it is not learned again).
  REQUIRE(tool.run(common + "--iters 12 --resume --out " + D + "/m.ember") == 0);
  CHECK(tool.err().find("byte-level BPE learned") == std::string::npos);
  auto spec2 = ember::read_model_file(D + "/m.ember");
  REQUIRE(spec2.ok());
  CHECK(spec2->tokenizer.tokens() == tok.tokens());

  // Fine-tuning the BPE model on JSONL with arbitrary Unicode, then ember-classify.
  {
    std::ofstream j(D + "/cls.jsonl");
    const char* pos[] = {"Free prize!!! 🎉 claim now", "WIN €1000 — text CLAIM", "Gratuit: café offert ☕ appelez"};
    const char* neg[] = {"see you at 5, ok?", "日本語のメッセージです", "Ça va? On se voit demain 🙂"};
    for (int i = 0; i < 24; ++i) {
      const bool p = i % 2;
      nlohmann::json row = {{"text", std::string(p ? pos[i % 3] : neg[i % 3]) + " #" + std::to_string(i)},
                            {"label", p ? "spam" : "ham"},
                            {"split", i < 16 ? "train" : "val"}};
      j << row.dump() << "\n";
    }
  }
  REQUIRE(tool.run("finetune --init " + D + "/m.ember --data " + D + "/cls.jsonl --out " + D + "/c.ember --epochs 1 --batch 4 --threads 1") == 0);
  ember_test::ToolRunner cls("ember-classify", "ember_train_bpe_cls");
  REQUIRE(cls.run("-m " + D + "/c.ember --text 'Ünïcödé 😀 text' --json") == 0);
  CHECK(cls.run("-m " + D + "/c.ember -f " + D + "/cls.jsonl --eval --split val") == 0);

  // Bad command lines.
  CHECK(tool.run("pretrain --data " + D + "/a.txt --out " + D + "/x.ember --vocab bpe --vocab-size 100") == 2);
  CHECK(tool.run("pretrain --data " + D + "/a.txt --out " + D + "/x.ember --vocab-size 300") == 2);
  CHECK(tool.err().find("--vocab-size needs --vocab bpe") != std::string::npos);
  CHECK(tool.run("pretrain --data " + D + "/a.txt --out " + D + "/x.ember --vocab gpt2") == 2);
  CHECK(tool.run("pretrain --data " + D + "/a.txt --out " + D + "/x.ember --vocab words") == 2);
  CHECK(tool.run(common + "--iters 20 --resume --vocab-size 500 --out " + D + "/m.ember") == 1);
  CHECK(tool.err().find("--vocab-size 500 disagrees") != std::string::npos);
  CHECK(tool.run("pretrain --data " + D + "/a.txt --out " + D + "/x.ember --vocab bpe --vocab-size 100000") == 1);
  CHECK(tool.err().find("runs out of pairs") != std::string::npos);
}

TEST_CASE("ember-train pretrain --vocab gpt2 on tiny shakespeare: nanoGPT's 301,966 / 36,059 tokens") {
  Train tool;
  const std::string data = ember_test::shared_data_dir() + "/text/tinyshakespeare.txt";
  const std::string dir = ember_test::shared_data_dir() + "/tokenizers/gpt2";
  if (!ember_test::need_tool(tool) || !ember_test::need_file(data, "tiny shakespeare") ||
      !ember_test::need_file(dir + "/encoder.json", "GPT-2's tokenizer"))
    return;
  REQUIRE(tool.run("pretrain --data " + data + " --vocab gpt2 --tokenizer-dir " + dir + " --n-layer 1 --n-head 1 --n-embd 8 "
                   "--block 8 --batch 1 --iters 1 --eval-every 0 --eval-iters 1 --threads 1 --out " + tool.dir + "/g.ember") == 0);
  const auto [n_train, n_val] = token_counts(tool.err());
  CHECK(n_train == 301966);
  CHECK(n_val == 36059);
  auto spec = ember::read_model_file(tool.dir + "/g.ember");
  REQUIRE(spec.ok());
  CHECK(spec->config.n_vocab == 50257);
  CHECK(spec->tokenizer.eot_id() == 50256);
}
