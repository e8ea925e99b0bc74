// Writes the seed corpora of the fuzz targets into DIR/<target>/ (tests/fuzz/corpus/ is its committed
// output): small valid inputs of every kind each parser reads, built with ember's own writers, plus a few
// taken from the test fixtures. Run from the repository root after changing a format:
//   build-fuzz/tests/fuzz/make_seeds tests/fuzz/corpus tests/data
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/convert.h"
#include "ember/quantize.h"
#include "ember/session.h"
#include "ember/train.h"

namespace {

std::string g_out;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_out + "/" + target;
  mkdir(g_out.c_str(), 0755);
  mkdir(dir.c_str(), 0755);
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "make_seeds: cannot write %s/%s\n", dir.c_str(), name.c_str());
    std::exit(1);
  }
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "make_seeds: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void die_if(const ember::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "make_seeds: %s\n", s.message().c_str());
    std::exit(1);
  }
}

// ---- .ember models ---------------------------------------------------------------------------------

ember::TensorData f32_tensor(const std::string& name, const std::vector<uint64_t>& shape, std::mt19937& rng) {
  ember::TensorData t;
  t.name = name;
  t.shape = shape;
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  std::normal_distribution<float> nd(0.0f, 0.3f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  if (name.find("ln_") != std::string::npos && name.find(".weight") != std::string::npos)
    for (float& x : v) x = 1.0f + 0.1f * x;
  t.data.resize(n * 4);
  std::memcpy(t.data.data(), v.data(), n * 4);
  return t;
}

ember::ModelSpec spec_for(const ember::ModelConfig& c, ember::Tokenizer tok) {
  ember::ModelSpec s;
  s.config = c;
  std::mt19937 rng(c.n_vocab * 31 + c.n_layer);
  for (const auto& r : ember::required_tensors(c)) s.tensors.push_back(f32_tensor(r.name, r.shape, rng));
  s.tokenizer = std::move(tok);
  s.metadata["source"] = "make_seeds";
  return s;
}

std::string write_model(const ember::ModelSpec& s) {
  const std::string tmp = g_out + "/.make_seeds.ember";
  die_if(ember::write_model_file(s, tmp));
  std::string bytes = slurp(tmp);
  std::remove(tmp.c_str());
  return bytes;
}

ember::Tokenizer chars_tok(const std::string& chars) {
  std::vector<std::string> syms;
  for (char ch : chars) syms.emplace_back(1, ch);
  return ember::Tokenizer::chars(syms).value();
}

// 256 byte tokens, then merges "he" "ll" "hell" "o " and an end-of-text token.
ember::Tokenizer small_bpe() {
  std::vector<std::string> toks;
  for (int b = 0; b < 256; ++b) toks.emplace_back(1, static_cast<char>(b));
  auto add = [&](const std::string& s) {
    toks.push_back(s);
    return static_cast<int32_t>(toks.size() - 1);
  };
  const int32_t he = add("he"), ll = add("ll");
  add("hell");
  add("o ");
  const int32_t eot = add("<|endoftext|>");
  std::vector<std::pair<int32_t, int32_t>> merges = {{'h', 'e'}, {'l', 'l'}, {he, ll}, {'o', ' '}};
  return ember::Tokenizer::gpt2_bpe(toks, merges, eot).value();
}

// ---- session states -------------------------------------------------------------------------------

// States of sessions of the int8 pre-LN model above (fuzz_session_state restores into the committed copy
// of it): f32 and int8 KV, empty, after a prompt, with a full context, and trimmed (no logits).
void state_seeds(const std::string& model_bytes) {
  auto m = ember::Model::load_from_buffer(model_bytes.data(), model_bytes.size(), "int8_preln_chars.ember");
  die_if(m.status());
  for (ember::KvType kv : {ember::KvType::kF32, ember::KvType::kInt8}) {
    ember::SessionOptions so;
    so.n_batch = 4;
    so.kv_type = kv;
    auto s = ember::Session::create(*m, so);
    die_if(s.status());
    const std::string k = ember::kv_type_name(kv);
    auto save = [&](const std::string& name) {
      auto st = (*s)->save_state();
      die_if(st.status());
      put("session_state", k + "_" + name + ".state", std::string(st->begin(), st->end()));
    };
    save("empty");
    const int32_t ids[6] = {1, 2, 3, 4, 5, 6};
    die_if((*s)->prefill(ids, 3));
    save("3");
    die_if((*s)->prefill(ids + 3, 3));
    save("full");
    die_if((*s)->trim(2));
    save("trimmed");
  }
}

void models() {
  ember::ModelConfig c;
  c.n_vocab = 12;
  c.n_ctx = 6;
  c.n_embd = 4;
  c.n_head = 2;
  c.n_layer = 1;
  c.n_ff = 8;
  c.norm = ember::NormPlacement::kPreLN;
  c.activation = ember::Activation::kGeluTanh;
  ember::ModelSpec pre = spec_for(c, chars_tok("\n abcdehlor!"));
  put("model", "f32_preln_chars.ember", write_model(pre));
  die_if(ember::quantize_model(pre, {}));
  const std::string int8_pre = write_model(pre);
  put("model", "int8_preln_chars.ember", int8_pre);
  state_seeds(int8_pre);

  c.norm = ember::NormPlacement::kPostLN;
  c.activation = ember::Activation::kRelu;
  c.tied_lm_head = false;
  c.n_classes = 2;
  ember::ModelSpec post = spec_for(c, ember::Tokenizer());
  post.metadata["classifier.labels"] = "ham,spam";
  put("model", "f32_postln_untied_cls.ember", write_model(post));
  // f16 weights: converted by the writer's caller, as ember-quantize --type f16 does.
  for (ember::TensorData& t : post.tensors) {
    std::vector<uint8_t> h(t.data.size() / 2);
    for (size_t i = 0; i < t.data.size() / 4; ++i) {
      float x;
      std::memcpy(&x, &t.data[4 * i], 4);
      const uint16_t v = ember::f32_to_f16(x);
      h[2 * i] = static_cast<uint8_t>(v);
      h[2 * i + 1] = static_cast<uint8_t>(v >> 8);
    }
    t.data = h;
    t.dtype = ember::DType::kF16;
  }
  put("model", "f16_postln_untied_cls.ember", write_model(post));

  c = ember::ModelConfig();
  c.n_vocab = 261;
  c.n_ctx = 4;
  c.n_embd = 2;
  c.n_head = 1;
  c.n_layer = 1;
  c.n_ff = 4;
  c.activation = ember::Activation::kGeluErf;
  ember::ModelSpec bpe = spec_for(c, small_bpe());
  die_if(ember::quantize_model(bpe, {}));
  put("model", "int8_gpt2_bpe.ember", write_model(bpe));

  // int4 (groups of 16: the smallest rows int4 takes), embedding int4 too.
  c = ember::ModelConfig();
  c.n_vocab = 12;
  c.n_ctx = 6;
  c.n_embd = 16;
  c.n_head = 2;
  c.n_layer = 1;
  c.n_ff = 32;
  ember::ModelSpec q4 = spec_for(c, chars_tok("\n abcdehlor!"));
  ember::QuantizeOptions o;
  o.type = o.embedding_type = ember::DType::kI4;
  o.group = 16;
  die_if(ember::quantize_model(q4, o));
  put("model", "int4_preln_chars.ember", write_model(q4));
}

// ---- safetensors -----------------------------------------------------------------------------------

struct StTensor {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  std::string bytes;
};

std::string safetensors(const std::vector<StTensor>& ts, const nlohmann::json& meta) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!meta.is_null()) h["__metadata__"] = meta;
  std::string data;
  for (const StTensor& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string hdr = h.dump();
  while (hdr.size() % 8) hdr += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(hdr.size()) >> (8 * i)) & 0xff);
  return out + hdr + data;
}

std::string floats(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}
std::string halves(const std::vector<uint16_t>& v) {
  std::string s(v.size() * 2, '\0');
  std::memcpy(&s[0], v.data(), s.size());
  return s;
}

void safetensors_seeds() {
  put("safetensors", "f32_f16_bf16.safetensors",
      safetensors({{"wte.weight", "F32", {2, 3}, floats({1, -2, 3.5f, 0, 1e-3f, -7})},
                   {"h.0.ln_1.bias", "F16", {3}, halves({0x3c00, 0xc000, 0x0001})},
                   {"lm_head.weight", "BF16", {1, 2}, halves({0x3f80, 0xff80})}},
                  {{"format", "pt"}}));
  put("safetensors", "nanogpt_names.safetensors",
      safetensors({{"_orig_mod.transformer.wte.weight", "F32", {2, 2}, floats({1, 2, 3, 4})},
                   {"transformer.h.0.attn.bias", "F32", {1, 1, 1, 1}, floats({1})},
                   {"empty", "F32", {0}, ""},
                   {"scalar", "F32", {}, floats({42})}},
                  nullptr));
  put("safetensors", "other_dtypes.safetensors",
      safetensors({{"a", "I64", {1}, std::string(8, '\1')}, {"b", "U8", {3}, "xyz"}, {"c", "BOOL", {1}, "\1"}},
                  {{"note", "not floats"}}));
}

// ---- tokenizer files -------------------------------------------------------------------------------

// GPT-2's byte-to-unicode spelling of byte b, as UTF-8.
std::string spell(int b) {
  int n = 0, cp = -1;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE);
    const int c = printable ? x : 256 + n++;
    if (x == b) cp = c;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

void tokenizer_seeds(const std::string& data) {
  nlohmann::ordered_json v = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) v[spell(b)] = b;
  const std::string G = spell(' ');
  const std::vector<std::string> extra = {"he", "ll", "hell", "hello", G + "w", G + "wo", G + "wor", "ld", G + "world", "<|endoftext|>"};
  int id = 256;
  for (const std::string& e : extra) v[e] = id++;
  const std::string merges = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n" + G + " w\n" + G + "w o\n" + G + "wo r\nl d\n" +
                             G + "wor ld\n";
  put("gpt2_vocab", "hf_small", v.dump() + std::string(1, '\0') + merges);
  put("gpt2_vocab", "openai_crlf", v.dump(1) + std::string(1, '\0') + "h e\r\nl l\r\nhe ll\r\n");
  put("gpt2_vocab", "bytes_only", nlohmann::ordered_json(v).dump() + std::string(1, '\0'));

  put("char_vocab", "array.json", slurp(data + "/golden/nanogpt/vocab_chars.json"));
  put("char_vocab", "map.json", R"({"b": 1, "a": 0, "é": 2, "\n": 3})");
  put("char_vocab", "meta_itos.json", R"({"vocab_size": 3, "itos": {"0": "x", "1": "y", "2": "€"}})");
  put("char_vocab", "meta_stoi.json", R"({"stoi": {"x": 0, "y": 1}, "itos": ["x", "y"]})");
  put("char_vocab", "itos_array.json", R"({"itos": ["\n", " ", "😀"]})");
}

// ---- datasets, config.json, text -------------------------------------------------------------------

void text_seeds(const std::string& data) {
  put("dataset", "rows.jsonl",
      "{\"text\": \"Ok lar... Joking wif u oni...\", \"label\": \"ham\", \"split\": \"train\", \"balanced\": true}\n"
      "{\"line\": 3, \"label\": \"spam\", \"split\": \"test\", \"text\": \"Free entry in 2 a wkly comp\"}\n"
      "\n   \r\n"
      "{\"text\": \"\\u00e9t\\u00e9 \\ud83d\\ude00\", \"label\": \"x\", \"balanced\": false}\r\n");
  put("dataset", "bad_line.jsonl", "{\"text\": \"a\", \"label\": \"b\"}\n{\"text\": 1}\n");

  for (const char* m : {"gpt2", "openai_gpt", "gpt1_relu", "nanogpt"})
    put("config_json", std::string(m) + ".json", slurp(data + "/golden/" + m + "/config.json"));
  put("config_json", "nanogpt_model_args.json",
      R"({"model_args": {"n_layer": 2, "n_head": 2, "n_embd": 8, "block_size": 16, "bias": true, "vocab_size": 50304, "dropout": 0.0}, "iter_num": 5000})");
  put("config_json", "gpt2_old.json",
      R"({"model_type": "gpt2", "vocab_size": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "activation_function": "gelu", "scale_attn_weights": true, "tie_word_embeddings": true, "n_inner": 3072})");

  std::ifstream vec(data + "/gpt2/test_vectors.jsonl");
  std::string line;
  for (int i = 0; std::getline(vec, line) && i < 24; ++i)
    put("bpe_encode", "vector_" + std::to_string(i), nlohmann::json::parse(line)["text"].get<std::string>());
  put("bpe_encode", "invalid_utf8", "ab\xff\xfe" "cd \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80");
  put("bpe_encode", "mixed", "ROMEO:\n  What's this?  It's 2024 \xe2\x80\x94 caf\xc3\xa9, \xf0\x9f\x98\x80!!\t\tend   ");

  put("token_file", "ids.txt", slurp(data + "/golden/nanogpt/tokens.txt"));
  put("token_file", "commas", "464, 2068,50256\r\n\t1 2147483647");
  put("token_file", "bad", "1 2 x 3");

  // Loss curves as ember-train writes them, and the degenerate ranges that once hung the plot.
  std::string csv = "iter,lr,loss,grad_norm,ms,train_loss,val_loss\n";
  for (uint64_t i = 0; i < 40; ++i) {
    ember::LossRow r;
    r.iter = i, r.lr = 1e-3, r.loss = 4.0 / (1 + 0.1 * i), r.grad_norm = 1.5, r.ms = 28.7;
    csv += ember::loss_curve_csv_row(r);
    if (i % 10 == 0) {
      ember::LossRow e;
      e.eval = true, e.iter = i, e.train_loss = r.loss, e.val_loss = r.loss * 1.05;
      csv += ember::loss_curve_csv_row(e);
    }
  }
  put("loss_csv", "run.csv", csv);
  std::vector<ember::LossRow> ft;  // a fine-tuning curve: two epochs, the LM loss in the first only
  for (uint64_t i = 0; i < 20; ++i) {
    ember::LossRow r;
    r.iter = i, r.lr = 3e-4, r.class_loss = 0.7 / (1 + 0.2 * i), r.grad_norm = 2.0, r.ms = 90.5;
    r.lm_loss = i < 10 ? 4.5 : std::numeric_limits<double>::quiet_NaN();
    r.loss = r.class_loss + (i < 10 ? 0.5 * r.lm_loss : 0.0);
    ft.push_back(r);
    if (i % 10 == 9) {
      ember::LossRow e;
      e.eval = true, e.iter = i + 1, e.val_loss = r.class_loss * 1.1, e.val_accuracy = 0.9 + 0.005 * static_cast<double>(i);
      ft.push_back(e);
    }
  }
  put("loss_csv", "finetune.csv", ember::loss_curve_csv(ft, ember::LossCurveKind::kFinetune));
  put("loss_csv", "flat_huge.csv", "iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,0.001,1e30,1,1,,\n2,0.001,1e30,1,1,,\n3,,,,,1e300,1e300\n");
  put("loss_csv", "extremes.csv", "iter,lr,loss,grad_norm,ms,train_loss,val_loss\n18446744073709551614,0.001,-1e308,1,1,,\n18446744073709551615,0.001,1e308,1,1,,\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds OUT_DIR TEST_DATA_DIR\n");
    return 2;
  }
  g_out = argv[1];
  mkdir(g_out.c_str(), 0755);
  const std::string data = argv[2];
  models();
  safetensors_seeds();
  tokenizer_seeds(data);
  text_seeds(data);
  return 0;
}
