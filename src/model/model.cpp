#include "ember/model.h"

#include <cstring>

#include "model/model_impl.h"

namespace ember {

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

Result<const float*> Model::Impl::f32(const std::string& name) {
  const TensorView* t = file->find(name);
  if (!t) return invalid_file(file->path() + ": tensor '" + name + "' is missing");
  const uint64_t n = t->n_elements();
  switch (t->dtype) {
    case DType::kF32:
      return reinterpret_cast<const float*>(t->data);
    case DType::kF16: {
      std::vector<float> v(n);
      const uint8_t* p = t->data;
      for (uint64_t i = 0; i < n; ++i) v[i] = half_to_float(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
      owned.push_back(std::move(v));
      return owned.back().data();
    }
    case DType::kI8: {
      std::vector<float> v(n);
      const uint64_t rows = t->shape[0], cols = n / rows;
      const int8_t* q = reinterpret_cast<const int8_t*>(t->data);
      for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) v[r * cols + c] = t->scales[r] * q[r * cols + c];
      owned.push_back(std::move(v));
      return owned.back().data();
    }
  }
  return invalid_file(file->path() + ": tensor '" + name + "' has an unknown dtype");
}

Model::Model() : impl_(new Impl()) {}
Model::~Model() = default;

Result<std::shared_ptr<const Model>> Model::load(const std::string& path) {
  std::shared_ptr<Model> m(new Model());
  Impl& I = *m->impl_;
  EMBER_ASSIGN_OR_RETURN(I.file, EmberFile::open(path));
  I.config = I.file->config();
  const ModelConfig& c = I.config;

  // Every required tensor with its exact shape; nothing unexpected.
  const std::vector<TensorRequirement> req = required_tensors(c);
  for (const TensorRequirement& r : req) {
    const TensorView* t = I.file->find(r.name);
    if (!t) return invalid_file(path + ": tensor '" + r.name + "' is missing");
    if (t->shape != r.shape) {
      std::string want, got;
      for (auto d : r.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : t->shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
      return invalid_file(path + ": tensor '" + r.name + "' has shape [" + got + "], expected [" + want + "]");
    }
  }
  if (I.file->tensors().size() != req.size()) {
    for (const TensorView& t : I.file->tensors()) {
      bool known = false;
      for (const TensorRequirement& r : req) known = known || r.name == t.name;
      if (!known) return invalid_file(path + ": unexpected tensor '" + t.name + "' for this config");
    }
  }
  EMBER_ASSIGN_OR_RETURN(I.tokenizer, I.file->load_tokenizer());
  if (I.tokenizer.kind() != TokenizerKind::kNone && static_cast<uint32_t>(I.tokenizer.n_vocab()) > c.n_vocab)
    return invalid_file(path + ": tokenizer has more tokens than n_vocab");

  EMBER_ASSIGN_OR_RETURN(I.wte, I.f32("wte"));
  EMBER_ASSIGN_OR_RETURN(I.wpe, I.f32("wpe"));
  const size_t C = c.n_embd, F = c.n_ff, V = c.n_vocab;
  I.layers.resize(c.n_layer);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    LayerWeights& L = I.layers[l];
    EMBER_ASSIGN_OR_RETURN(L.ln_1_g, I.f32(p + "ln_1.weight"));
    EMBER_ASSIGN_OR_RETURN(L.ln_1_b, I.f32(p + "ln_1.bias"));
    EMBER_ASSIGN_OR_RETURN(L.ln_2_g, I.f32(p + "ln_2.weight"));
    EMBER_ASSIGN_OR_RETURN(L.ln_2_b, I.f32(p + "ln_2.bias"));
    struct { LinearF32* dst; const char* name; size_t in, out; } lin[] = {
        {&L.attn_qkv, "attn.c_attn", C, 3 * C},
        {&L.attn_proj, "attn.c_proj", C, C},
        {&L.mlp_fc, "mlp.c_fc", C, F},
        {&L.mlp_proj, "mlp.c_proj", F, C}};
    for (auto& x : lin) {
      const float *w, *b;
      EMBER_ASSIGN_OR_RETURN(w, I.f32(p + x.name + ".weight"));
      EMBER_ASSIGN_OR_RETURN(b, I.f32(p + x.name + ".bias"));
      EMBER_ASSIGN_OR_RETURN(*x.dst, LinearF32::create(w, b, x.in, x.out, p + x.name));
    }
  }
  if (c.norm == NormPlacement::kPreLN) {
    EMBER_ASSIGN_OR_RETURN(I.ln_f_g, I.f32("ln_f.weight"));
    EMBER_ASSIGN_OR_RETURN(I.ln_f_b, I.f32("ln_f.bias"));
  }
  const float* head = I.wte;
  if (!c.tied_lm_head) {
    EMBER_ASSIGN_OR_RETURN(head, I.f32("lm_head.weight"));
  }
  EMBER_ASSIGN_OR_RETURN(I.lm_head, LinearF32::create(head, nullptr, C, V, "lm_head"));
  if (c.n_classes > 0) {
    const float *w, *b;
    EMBER_ASSIGN_OR_RETURN(w, I.f32("cls.weight"));
    EMBER_ASSIGN_OR_RETURN(b, I.f32("cls.bias"));
    EMBER_ASSIGN_OR_RETURN(I.cls, LinearF32::create(w, b, C, c.n_classes, "cls"));
  }
  return std::shared_ptr<const Model>(std::move(m));
}

const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return impl_->tokenizer; }
const std::map<std::string, std::string>& Model::metadata() const { return impl_->file->metadata(); }
uint64_t Model::file_size() const { return impl_->file->file_size(); }
uint32_t Model::format_version() const { return impl_->file->format_version(); }
const std::string& Model::path() const { return impl_->file->path(); }

std::vector<TensorInfo> Model::tensors() const {
  std::vector<TensorInfo> r;
  for (const TensorView& t : impl_->file->tensors()) r.push_back({t.name, t.shape, t.dtype, t.size});
  return r;
}

}  // namespace ember
