// Checkpoint import: safetensors + config.json (+ tokenizer files) in one of three namings, mapped to
// the canonical tensor layout (GPT-2 names, linear weights [out, in], F32).
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "convert/import.h"
#include "convert/json_excerpt.h"
#include "convert/safetensors.h"
#include "format/q4.h"
#include "ember/convert.h"
#include "ember/io.h"

namespace ember {

namespace {

using json = nlohmann::json;
using Entry = SafetensorsFile::Entry;

enum class Naming { kHfGpt2, kHfOpenaiGpt, kNanoGpt };

const char* naming_name(Naming n) {
  switch (n) {
    case Naming::kHfGpt2: return "hf-gpt2";
    case Naming::kHfOpenaiGpt: return "hf-openai-gpt";
    case Naming::kNanoGpt: return "nanogpt";
  }
  return "?";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::string strip_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}
std::string basename_of(const std::string& path) {
  const std::string p = strip_slashes(path);
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}
std::string dirname_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}
bool is_file(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// The checkpoint file of a directory: model.safetensors, else the only *.safetensors in it. Names that
// exist but are not regular files (a FIFO, a directory) are returned too: opening them says what they are.
Result<std::string> find_checkpoint(const std::string& dir) {
  const auto exists = [](const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
  };
  const std::string preferred = join(dir, "model.safetensors");
  if (exists(preferred)) return preferred;
  DIR* d = opendir(dir.c_str());
  if (!d) return io_error(dir + ": cannot list directory: " + std::strerror(errno));
  std::vector<std::string> found;
  while (const dirent* ent = readdir(d)) {
    const std::string n = ent->d_name;
    if (ends_with(n, ".safetensors") && exists(join(dir, n))) found.push_back(n);
  }
  closedir(d);
  if (found.empty()) return not_found(dir + ": no .safetensors file in the directory");
  if (found.size() > 1) {
    std::sort(found.begin(), found.end());
    std::string names;
    for (const auto& n : found) names += (names.empty() ? "" : ", ") + n;
    return unsupported(dir + ": several .safetensors files (" + names +
                       "); sharded checkpoints are not supported, pass one file");
  }
  return join(dir, found[0]);
}

Result<json> read_json(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(std::string text, read_file(path));
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    return invalid_file(path + ": not valid JSON: " + e.what());
  }
}

// Typed config.json fields. Absent (or null, for optional fields) falls back to the default that
// transformers / nanoGPT use for that field; present but of the wrong type is an error.
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  Result<uint32_t> u32(const char* key, const uint32_t* fallback = nullptr) const {
    if (!has(key)) return missing_or<uint32_t>(key, fallback);
    const json& v = j_[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > UINT32_MAX)
      return bad(key, "a non-negative integer", v);
    return static_cast<uint32_t>(v.get<uint64_t>());
  }
  Result<float> f32(const char* key, float fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    if (!v.is_number()) return bad(key, "a number", v);
    return v.get<float>();
  }
  Result<bool> boolean(const char* key, const bool* fallback = nullptr) const {
    if (!has(key)) return missing_or<bool>(key, fallback);
    const json& v = j_[key];
    if (!v.is_boolean()) return bad(key, "true or false", v);
    return v.get<bool>();
  }
  Result<std::string> str(const char* key, const char* fallback) const {
    if (!has(key)) return std::string(fallback);
    const json& v = j_[key];
    if (!v.is_string()) return bad(key, "a string", v);
    return v.get<std::string>();
  }
  const std::string& file() const { return file_; }

 private:
  template <typename T>
  Result<T> missing_or(const char* key, const T* fallback) const {
    if (fallback) return *fallback;
    return invalid_file(file_ + ": missing field '" + key + "'");
  }
  Status bad(const char* key, const char* want, const json& v) const {
    const std::string got = json_excerpt(v, 40);
    return invalid_file(file_ + ": field '" + key + "' must be " + want + ", got " + got);
  }

  const json& j_;
  std::string file_;
};

Result<Activation> parse_activation(const ConfigReader& r, const char* key, const std::string& name) {
  // gelu_new, gelu_fast and gelu_pytorch_tanh are the same tanh approximation; "gelu" is exact (erf).
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "gelu" || name == "gelu_python") return Activation::kGeluErf;
  if (name == "relu") return Activation::kRelu;
  return unsupported(r.file() + ": field '" + key + "' = \"" + name +
                     "\" is not a supported activation (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, relu)");
}

uint32_t times4(uint32_t n) { return n > UINT32_MAX / 4 ? UINT32_MAX : 4 * n; }  // validate() rejects the clamp

struct Detected {
  Naming naming;
  ModelConfig config;
  bool nanogpt_bias = true;  // nanoGPT bias=false: no bias tensors in the file, zeros materialized
};

Result<Detected> read_config(const json& root, const std::string& file) {
  if (!root.is_object()) return invalid_file(file + ": not a JSON object");
  Detected d;
  ModelConfig& c = d.config;
  const json* j = &root;
  if (root.contains("model_type")) {
    const json& mt = root["model_type"];
    if (!mt.is_string()) return invalid_file(file + ": field 'model_type' must be a string");
    const std::string t = mt.get<std::string>();
    if (t == "gpt2") d.naming = Naming::kHfGpt2;
    else if (t == "openai-gpt") d.naming = Naming::kHfOpenaiGpt;
    else return unsupported(file + ": model_type '" + t + "' is not supported (gpt2, openai-gpt, or a nanoGPT config)");
  } else if (root.contains("model_args") && root["model_args"].is_object()) {
    d.naming = Naming::kNanoGpt;  // nanoGPT's checkpoint dict written out whole
    j = &root["model_args"];
  } else if (root.contains("block_size")) {
    d.naming = Naming::kNanoGpt;
  } else {
    return invalid_file(file + ": neither 'model_type' (Hugging Face) nor 'block_size' (nanoGPT): "
                        "cannot tell which naming the checkpoint uses");
  }
  const ConfigReader r(*j, file);
  const bool kTrue = true, kFalse = false;

  EMBER_ASSIGN_OR_RETURN(c.n_embd, r.u32("n_embd"));
  EMBER_ASSIGN_OR_RETURN(c.n_head, r.u32("n_head"));
  EMBER_ASSIGN_OR_RETURN(c.n_layer, r.u32("n_layer"));
  EMBER_ASSIGN_OR_RETURN(c.n_vocab, r.u32("vocab_size"));
  const uint32_t ff4 = times4(c.n_embd);
  switch (d.naming) {
    case Naming::kHfGpt2: {
      // Old configs carry both n_positions and n_ctx (equal); n_positions sizes wpe.
      EMBER_ASSIGN_OR_RETURN(c.n_ctx, r.u32(r.has("n_positions") || !r.has("n_ctx") ? "n_positions" : "n_ctx"));
      EMBER_ASSIGN_OR_RETURN(c.n_ff, r.u32("n_inner", &ff4));
      EMBER_ASSIGN_OR_RETURN(c.norm_eps, r.f32("layer_norm_epsilon", 1e-5f));
      EMBER_ASSIGN_OR_RETURN(std::string act, r.str("activation_function", "gelu_new"));
      EMBER_ASSIGN_OR_RETURN(c.activation, parse_activation(r, "activation_function", act));
      EMBER_ASSIGN_OR_RETURN(c.tied_lm_head, r.boolean("tie_word_embeddings", &kTrue));
      // Attention variants the runtime does not implement would import silently and run wrong.
      EMBER_ASSIGN_OR_RETURN(bool scale, r.boolean("scale_attn_weights", &kTrue));
      EMBER_ASSIGN_OR_RETURN(bool by_layer, r.boolean("scale_attn_by_inverse_layer_idx", &kFalse));
      EMBER_ASSIGN_OR_RETURN(bool cross, r.boolean("add_cross_attention", &kFalse));
      if (!scale || by_layer || cross)
        return unsupported(file + ": " +
                           (!scale ? "scale_attn_weights=false" : by_layer ? "scale_attn_by_inverse_layer_idx=true"
                                                                            : "add_cross_attention=true") +
                           " is not supported");
      c.norm = NormPlacement::kPreLN;
      break;
    }
    case Naming::kHfOpenaiGpt: {
      EMBER_ASSIGN_OR_RETURN(c.n_ctx, r.u32("n_positions"));
      c.n_ff = ff4;
      EMBER_ASSIGN_OR_RETURN(c.norm_eps, r.f32("layer_norm_epsilon", 1e-5f));
      EMBER_ASSIGN_OR_RETURN(std::string act, r.str("afn", "gelu"));
      EMBER_ASSIGN_OR_RETURN(c.activation, parse_activation(r, "afn", act));
      EMBER_ASSIGN_OR_RETURN(c.tied_lm_head, r.boolean("tie_word_embeddings", &kTrue));
      c.norm = NormPlacement::kPostLN;
      break;
    }
    case Naming::kNanoGpt: {
      EMBER_ASSIGN_OR_RETURN(c.n_ctx, r.u32("block_size"));
      EMBER_ASSIGN_OR_RETURN(d.nanogpt_bias, r.boolean("bias"));
      c.n_ff = ff4;
      c.norm_eps = 1e-5f;  // nn.LayerNorm / F.layer_norm default in nanoGPT's model.py
      c.activation = Activation::kGeluErf;
      c.norm = NormPlacement::kPreLN;
      c.tied_lm_head = true;  // decided from the tensors
      break;
    }
  }
  EMBER_RETURN_IF_ERROR(c.validate().with_context(file));
  return d;
}

// Causal-mask buffers that transformers and nanoGPT (without flash attention) save with the weights.
bool is_ignored_buffer(const std::string& key) {
  if (key == "position_ids") return true;  // openai-gpt, older transformers versions
  if (!starts_with(key, "h.")) return false;
  size_t i = 2;
  while (i < key.size() && key[i] >= '0' && key[i] <= '9') ++i;
  if (i == 2) return false;
  const std::string rest = key.substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

// Source key (prefixes stripped) of a canonical tensor, and whether it is stored [in, out].
std::string source_key(Naming n, const std::string& canonical) {
  if (canonical == "wte") return n == Naming::kHfOpenaiGpt ? "tokens_embed.weight" : "wte.weight";
  if (canonical == "wpe") return n == Naming::kHfOpenaiGpt ? "positions_embed.weight" : "wpe.weight";
  return canonical;
}
bool stored_in_out(Naming n, const std::string& canonical, size_t rank) {
  // transformers' Conv1D keeps its weight as [in, out]; nanoGPT's nn.Linear is already [out, in].
  return n != Naming::kNanoGpt && rank == 2 && starts_with(canonical, "h.");
}

void append_f32_le(std::vector<uint8_t>& out, const std::vector<float>& v) {
  out.resize(v.size() * 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    out[4 * i] = static_cast<uint8_t>(u);
    out[4 * i + 1] = static_cast<uint8_t>(u >> 8);
    out[4 * i + 2] = static_cast<uint8_t>(u >> 16);
    out[4 * i + 3] = static_cast<uint8_t>(u >> 24);
  }
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

Status load_tokenizer(const std::string& dir, Naming naming, ModelSpec* spec) {
  const auto have = [&](const char* n) { return is_file(join(dir, n)); };
  Result<Tokenizer> tok = Tokenizer();
  std::string files;
  const bool bpe_hf = have("vocab.json") && have("merges.txt");
  const bool bpe_openai = have("encoder.json") && have("vocab.bpe");
  if ((bpe_hf || bpe_openai) && naming == Naming::kHfOpenaiGpt) {
    // GPT-1's BPE (lower-cased, ftfy, "</w>" word ends) is not GPT-2's byte-level BPE; loading it as
    // such would give wrong ids, so the model is imported without a tokenizer.
    spec->metadata["tokenizer_skipped"] = "GPT-1 BPE files are not byte-level BPE";
  } else if (bpe_hf) {
    files = "vocab.json + merges.txt";
    spec->source_files.insert(spec->source_files.end(), {join(dir, "vocab.json"), join(dir, "merges.txt")});
    tok = load_gpt2_tokenizer(join(dir, "vocab.json"), join(dir, "merges.txt"));
  } else if (bpe_openai) {
    files = "encoder.json + vocab.bpe";
    spec->source_files.insert(spec->source_files.end(), {join(dir, "encoder.json"), join(dir, "vocab.bpe")});
    tok = load_gpt2_tokenizer(join(dir, "encoder.json"), join(dir, "vocab.bpe"));
  } else if (have("vocab_chars.json")) {
    files = "vocab_chars.json";
    spec->source_files.push_back(join(dir, "vocab_chars.json"));
    tok = load_char_tokenizer(join(dir, "vocab_chars.json"));
  } else {
    // Half of a BPE pair is a mistake in the checkpoint, not a model without a tokenizer.
    for (const auto& pair : {std::make_pair("vocab.json", "merges.txt"), std::make_pair("encoder.json", "vocab.bpe")})
      if (have(pair.first) != have(pair.second))
        return not_found(join(dir, have(pair.first) ? pair.second : pair.first) + ": not found, but " +
                         (have(pair.first) ? pair.first : pair.second) +
                         " is there (a GPT-2 tokenizer needs both files; remove the other to import without one)");
  }
  if (!tok.ok()) return tok.status();
  if (tok->kind() != TokenizerKind::kNone && static_cast<uint32_t>(tok->n_vocab()) > spec->config.n_vocab)
    return invalid_file(join(dir, files) + ": tokenizer has " + std::to_string(tok->n_vocab()) +
                        " tokens but the model's vocab_size is " + std::to_string(spec->config.n_vocab));
  spec->tokenizer = std::move(tok).value();
  return Status::Ok();
}

Result<ModelSpec> import_safetensors(const std::string& input, const std::string& st_path, const std::string& dir) {
  const std::string cfg_path = join(dir, "config.json");
  if (!is_file(cfg_path)) return not_found(cfg_path + ": not found (the model's hyper-parameters come from it)");
  EMBER_ASSIGN_OR_RETURN(json cfg_json, read_json(cfg_path));
  EMBER_ASSIGN_OR_RETURN(Detected det, read_config(cfg_json, cfg_path));
  EMBER_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::open(st_path));
  const Naming naming = det.naming;
  const std::string tag = std::string(" (") + naming_name(naming) + " naming)";

  // Keys without torch.compile's "_orig_mod." and the model's "transformer." prefix.
  std::map<std::string, const Entry*> keys;
  for (const Entry& e : st.entries()) {
    std::string k = e.name;
    if (starts_with(k, "_orig_mod.")) k = k.substr(10);
    if (starts_with(k, "transformer.")) k = k.substr(12);
    if (!keys.emplace(k, &e).second)
      return invalid_file(st_path + ": tensors '" + keys[k]->name + "' and '" + e.name + "' both map to '" + k + "'");
  }
  const auto lookup = [&](const std::string& k) -> const Entry* {
    auto it = keys.find(k);
    return it == keys.end() ? nullptr : it->second;
  };
  std::set<const Entry*> used;

  // The weight layout. Hugging Face's Conv1D stores [in, out]; a nanoGPT state dict (nn.Linear,
  // [out, in]) saved beside a Hugging Face config.json uses the same names. The QKV projection is never
  // square ([3C, C] or [C, 3C]), so its shape tells which, for every layer.
  ModelConfig& config = det.config;
  bool linear_layout = naming == Naming::kNanoGpt;
  std::string layout_note;
  if (const Entry* qkv = lookup(source_key(naming, "h.0.attn.c_attn.weight"))) {
    const uint64_t C = config.n_embd;
    if (!linear_layout && qkv->shape == std::vector<uint64_t>{3 * C, C}) {
      linear_layout = true;
      layout_note = "nn.Linear weights [out, in] (" + qkv->name + " is " + shape_str(qkv->shape) +
                    "): a nanoGPT-style state dict with a " + naming_name(naming) + " config";
    }
  }
  // The LM head: tied unless the file holds a different lm_head.weight.
  const Entry* wte_entry = lookup(source_key(naming, "wte"));
  const Entry* lm_entry = lookup("lm_head.weight");
  if (linear_layout && !wte_entry && lm_entry) {
    // nanoGPT ties by assigning one Parameter to both names; safetensors keeps only one of them.
    wte_entry = lm_entry;
    lm_entry = nullptr;
  }
  if (wte_entry && lm_entry && (naming == Naming::kNanoGpt || config.tied_lm_head) &&
      wte_entry->shape == lm_entry->shape) {
    EMBER_ASSIGN_OR_RETURN(std::vector<float> a, st.read_f32(*wte_entry));
    EMBER_ASSIGN_OR_RETURN(std::vector<float> b, st.read_f32(*lm_entry));
    const bool same = bitwise_equal(a, b);
    if (naming == Naming::kNanoGpt) config.tied_lm_head = same;
    else if (!same)
      return invalid_file(st_path + ": lm_head.weight differs from the token embedding but " + cfg_path +
                          " says tie_word_embeddings = true");
    if (same) used.insert(lm_entry);
  } else if (naming == Naming::kNanoGpt && lm_entry) {
    config.tied_lm_head = false;  // shape check below names the problem if it is not [V, C]
  }

  // Plan every canonical tensor before reading any, so a bad file fails fast.
  struct Plan {
    TensorRequirement req;
    const Entry* src = nullptr;  // nullptr: zeros (nanoGPT bias=false)
    bool transpose = false;
  };
  std::vector<Plan> plan;
  for (TensorRequirement& r : required_tensors(config)) {
    Plan p;
    p.transpose = !linear_layout && stored_in_out(naming, r.name, r.shape.size());
    const std::string key = source_key(naming, r.name);
    p.src = r.name == "wte" ? wte_entry : lookup(key);
    const bool zero_bias = naming == Naming::kNanoGpt && !det.nanogpt_bias && ends_with(r.name, ".bias");
    if (zero_bias) {
      p.src = nullptr;
    } else if (!p.src) {
      return not_found(st_path + ": missing tensor '" + key + "'" + tag);
    } else {
      std::vector<uint64_t> want = r.shape;
      if (p.transpose) std::swap(want[0], want[1]);
      if (p.src->shape != want)
        return invalid_file(st_path + ": tensor '" + p.src->name + "' has shape " + shape_str(p.src->shape) +
                            ", expected " + shape_str(want) + tag +
                            (p.transpose ? "; Conv1D weights are stored [in, out]" : "") +
                            (layout_note.empty() ? "" : "; the layout was read from " + layout_note));
      used.insert(p.src);
    }
    p.req = std::move(r);
    plan.push_back(std::move(p));
  }
  std::vector<std::string> extras;
  for (const auto& kv : keys)
    if (!used.count(kv.second) && !is_ignored_buffer(kv.first)) extras.push_back(kv.second->name);
  if (!extras.empty()) {
    std::string list;
    for (size_t i = 0; i < extras.size() && i < 5; ++i) list += (i ? ", '" : "'") + extras[i] + "'";
    if (extras.size() > 5) list += " and " + std::to_string(extras.size() - 5) + " more";
    return invalid_file(st_path + ": unexpected tensor" + (extras.size() > 1 ? "s " : " ") + list + tag);
  }

  ModelSpec spec;
  spec.config = config;
  spec.source_files = {st_path, cfg_path};
  EMBER_RETURN_IF_ERROR(load_tokenizer(dir, naming, &spec));  // before the bulk of the reading
  spec.tensors.reserve(plan.size());
  for (const Plan& p : plan) {
    TensorData t;
    t.name = p.req.name;
    t.shape = p.req.shape;
    t.dtype = DType::kF32;
    std::vector<float> v;
    if (!p.src) {
      v.assign(t.shape[0], 0.0f);  // nanoGPT bias=false: LayerNorm and linear biases are all zero
    } else {
      EMBER_ASSIGN_OR_RETURN(v, st.read_f32(*p.src));
      for (size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
          return invalid_file(st_path + ": tensor '" + p.src->name + "' holds " + (std::isnan(v[i]) ? "NaN" : "an infinity") +
                              " at element " + std::to_string(i) + "; a model needs finite weights");
      if (p.transpose) {  // [in, out] -> [out, in]
        const size_t rows = t.shape[0], cols = t.shape[1];  // out, in
        std::vector<float> tr(v.size());
        for (size_t i = 0; i < cols; ++i)
          for (size_t o = 0; o < rows; ++o) tr[o * cols + i] = v[i * rows + o];
        v.swap(tr);
      }
    }
    append_f32_le(t.data, v);
    spec.tensors.push_back(std::move(t));
  }

  spec.metadata["source"] = basename_of(input);
  if (!layout_note.empty()) spec.metadata["layout"] = layout_note;
  spec.metadata["naming"] = naming_name(naming);
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(st_path));
  return spec;
}

}  // namespace

Result<ModelConfig> parse_checkpoint_config(const std::string& json_text, const std::string& name) {
  try {
    json j;
    try {
      j = json::parse(json_text);
    } catch (const std::exception& e) {
      return invalid_file(name + ": not valid JSON: " + e.what());
    }
    EMBER_ASSIGN_OR_RETURN(Detected d, read_config(j, name));
    return d.config;
  } catch (const std::exception& e) {
    return invalid_file(name + ": " + e.what());
  }
}

std::vector<float> tensor_values(const TensorData& t) {
  uint64_t n = 1;
  for (uint64_t d : t.shape) n *= d;
  std::vector<float> f(n);
  if (t.dtype == DType::kI4)
    decode_i4_f32(t.data.data(), t.shape[0], t.shape[1], t.group, f.data());
  else
    decode_f32(t.dtype, t.data.data(), n, t.scales.data(), t.shape.empty() || t.shape[0] == 0 ? 1 : n / t.shape[0], f.data());
  return f;
}

const TensorData* ModelSpec::find(const std::string& name) const {
  for (const TensorData& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Status ModelSpec::validate() const {
  EMBER_RETURN_IF_ERROR(config.validate());
  std::map<std::string, const std::vector<uint64_t>*> required;
  std::vector<TensorRequirement> reqs = required_tensors(config);
  for (const TensorRequirement& r : reqs) required[r.name] = &r.shape;
  std::set<std::string> seen;
  for (const TensorData& t : tensors) {
    const std::string T = "tensor '" + t.name + "'";
    auto it = required.find(t.name);
    if (it == required.end()) return invalid_file(T + " is not part of this model's layout");
    if (!seen.insert(t.name).second) return invalid_file(T + " appears twice");
    if (t.shape != *it->second)
      return invalid_file(T + " has shape " + shape_str(t.shape) + ", expected " + shape_str(*it->second));
    if (static_cast<uint8_t>(t.dtype) > static_cast<uint8_t>(DType::kI4))
      return invalid_file(T + " has an unknown dtype");
    if (t.dtype == DType::kI4) {
      if (!t.scales.empty()) return invalid_file(T + " is i4 but has per-row scales (its group scales are in its data)");
      EMBER_ASSIGN_OR_RETURN(const uint64_t bytes, q4_checked_bytes(T, t.shape, t.group));
      if (t.data.size() != bytes)
        return invalid_file(T + " holds " + std::to_string(t.data.size()) + " bytes, expected " + std::to_string(bytes) +
                            " for " + shape_str(t.shape) + " i4 in groups of " + std::to_string(t.group));
      EMBER_RETURN_IF_ERROR(q4_check_scales(T, t.data.data(), t.shape[0], t.shape[1], t.group));
      continue;
    }
    if (t.group != 0) return invalid_file(T + " is " + dtype_name(t.dtype) + " but has a group size (only i4 tensors do)");
    uint64_t n = dtype_size(t.dtype);
    for (uint64_t d : t.shape) n *= d;  // shape matches a validated config: no overflow
    if (t.data.size() != n)
      return invalid_file(T + " holds " + std::to_string(t.data.size()) + " bytes, expected " + std::to_string(n) +
                          " for " + shape_str(t.shape) + " " + dtype_name(t.dtype));
    if (t.dtype == DType::kI8) {
      if (t.scales.size() != t.shape[0])
        return invalid_file(T + " has " + std::to_string(t.scales.size()) + " scales, expected " +
                            std::to_string(t.shape[0]) + " (one per row)");
      for (float s : t.scales)
        if (!std::isfinite(s)) return invalid_file(T + " has a non-finite scale");
    } else if (!t.scales.empty()) {
      return invalid_file(T + " is " + dtype_name(t.dtype) + " but has scales (only i8 tensors do)");
    } else {
      // A NaN or infinite weight makes every forward pass NaN: refused wherever a model is read or written.
      const size_t count = n / dtype_size(t.dtype);
      for (size_t i = 0; i < count; ++i) {
        float v;
        if (t.dtype == DType::kF32) {
          std::memcpy(&v, &t.data[4 * i], 4);
        } else {  // kF16
          v = f16_to_f32(static_cast<uint16_t>(t.data[2 * i] | (t.data[2 * i + 1] << 8)));
        }
        if (!std::isfinite(v))
          return invalid_file(T + " holds " + (std::isnan(v) ? "NaN" : "an infinity") + " at element " +
                              std::to_string(i) + "; a model needs finite weights");
      }
    }
  }
  for (const TensorRequirement& r : reqs)
    if (!seen.count(r.name)) return not_found("missing tensor '" + r.name + "'");
  if (tokenizer.kind() != TokenizerKind::kNone && static_cast<uint32_t>(tokenizer.n_vocab()) > config.n_vocab)
    return invalid_file("tokenizer has " + std::to_string(tokenizer.n_vocab()) + " tokens, more than n_vocab " +
                        std::to_string(config.n_vocab));
  return Status::Ok();
}

Result<ModelSpec> import_model(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return not_found(path + ": no such file or directory");
  if (S_ISDIR(st.st_mode)) {
    const std::string dir = strip_slashes(path);
    EMBER_ASSIGN_OR_RETURN(std::string file, find_checkpoint(dir));
    return import_safetensors(path, file, dir);
  }
  if (ends_with(path, ".ember")) return read_model_file(path);
  if (ends_with(path, ".safetensors")) return import_safetensors(path, path, dirname_of(path));
  return unsupported(path + ": expected a checkpoint directory, a .safetensors file or an .ember file "
                     "(PyTorch pickles such as .bin / .pt are not read; convert them to safetensors)");
}

}  // namespace ember
