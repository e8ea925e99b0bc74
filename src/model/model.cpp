#include "ember/model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "core/hash.h"
#include "format/q4.h"
#include "model/layer_tensors.h"
#include "model/model_impl.h"

#include <algorithm>

namespace ember {


Result<const float*> Model::Impl::f32(const std::string& name) {
  auto cached = owned.find(name);
  if (cached != owned.end()) return cached->second.data();
  const TensorView* t = file->find(name);
  if (!t) return invalid_file(file->path() + ": tensor '" + name + "' is missing");
  const uint64_t n = t->n_elements();
  switch (t->dtype) {
    case DType::kF32:
      return reinterpret_cast<const float*>(t->data);
    case DType::kF16:
    case DType::kI8:
    case DType::kI4: {
      std::vector<float> v(n);
      if (t->dtype == DType::kI4)
        decode_i4_f32(t->data, t->shape[0], t->shape[1], t->group, v.data());
      else
        decode_f32(t->dtype, t->data, n, t->scales, n / t->shape[0], v.data());
      return (owned[name] = std::move(v)).data();
    }
  }
  return invalid_file(file->path() + ": tensor '" + name + "' has an unknown dtype");
}

Result<Linear> Model::Impl::linear(const std::string& weight, const std::string& bias, size_t in, size_t out) {
  Linear l;
  l.in = in;
  l.out = out;
  if (!bias.empty()) {
    EMBER_ASSIGN_OR_RETURN(l.bias, f32(bias));
  }
  const TensorView* w = file->find(weight);
  if (!w) return invalid_file(file->path() + ": tensor '" + weight + "' is missing");
  if (w->dtype == DType::kI8) {
    l.w_q8 = reinterpret_cast<const int8_t*>(w->data);
    l.w_scales = w->scales;
    // gemm_q8's sign trick needs weights in [-127, 127]; -128 would overflow the int16 pair sums.
    for (uint64_t i = 0; i < w->size; ++i)
      if (l.w_q8[i] == -128) return invalid_file(file->path() + ": tensor '" + weight + "' holds -128 (int8 weights are symmetric, [-127, 127])");
    max_linear_in = std::max(max_linear_in, in);
    return l;
  }
  if (w->dtype == DType::kI4) {  // the verifier checked the layout and the scales (format/q4.h)
    l.w_q4 = w->data;
    l.q4_scales = reinterpret_cast<const uint16_t*>(w->data + q4_nibble_bytes(out, in));
    l.group = w->group;
    max_linear_in = std::max(max_linear_in, in);
    return l;
  }
  const float* wf;
  EMBER_ASSIGN_OR_RETURN(wf, f32(weight));
  EMBER_ASSIGN_OR_RETURN(l.f32, LinearF32::create(wf, l.bias, in, out, weight));
  has_xnn_ops = true;
  if (weight != "wte") {  // wte is also the embedding table; everything else now lives in the pack
    if (w->dtype == DType::kF32) {
      const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
      const uintptr_t a = (reinterpret_cast<uintptr_t>(w->data) + page - 1) / page * page;
      const uintptr_t b = (reinterpret_cast<uintptr_t>(w->data) + w->size) / page * page;
      if (b > a && file->is_mapped()) {
        madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
        released.emplace_back(reinterpret_cast<void*>(a), b - a);
      }
    } else {
      owned.erase(weight);
    }
  }
  return l;
}

Model::Model() : impl_(new Impl()) {}
Model::~Model() = default;

Result<std::shared_ptr<const Model>> Model::load(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmberFile> file, EmberFile::open(path));
  return Impl::load_file(std::move(file));
}

Result<std::shared_ptr<const Model>> Model::load_from_buffer(const void* data, size_t size, const std::string& name) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmberFile> file, EmberFile::from_copy(data, size, name));
  return Impl::load_file(std::move(file));
}

Result<std::shared_ptr<const Model>> Model::load_from_memory(const void* data, size_t size, const std::string& name) {
  if (!data) return invalid_argument(name + ": null buffer of " + std::to_string(size) + " bytes");
  const uintptr_t misalign = reinterpret_cast<uintptr_t>(data) % kTensorAlignment;
  if (misalign != 0)
    return invalid_argument(name + ": a model used in place must be " + std::to_string(kTensorAlignment) +
                            "-byte aligned; this buffer is " + std::to_string(misalign) +
                            " bytes past an aligned address (use load_from_buffer, which copies)");
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmberFile> file,
                         EmberFile::from_buffer(static_cast<const uint8_t*>(data), size, name));
  return Impl::load_file(std::move(file));
}

Result<std::shared_ptr<const Model>> Model::Impl::load_file(std::unique_ptr<EmberFile> file) {
  const std::string path = file->path();
  try {
    return load_verified(std::move(file));
  } catch (const std::bad_alloc&) {  // f32 copies of f16 / int8 tensors: a model can be too large
    return internal_error(path + ": out of memory loading the model");
  }
}

Result<std::shared_ptr<const Model>> Model::Impl::load_verified(std::unique_ptr<EmberFile> file) {
  std::shared_ptr<Model> m(new Model());
  Impl& I = *m->impl_;
  I.file = std::move(file);
  const std::string& path = I.file->path();
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

  const TensorView* wte = I.file->find("wte");
  if (wte->dtype == DType::kI8) {
    I.wte_q8 = reinterpret_cast<const int8_t*>(wte->data);
    I.wte_scales = wte->scales;
  } else if (wte->dtype == DType::kI4) {
    I.wte_q4 = wte->data;
    I.wte_group = wte->group;
  } else {
    EMBER_ASSIGN_OR_RETURN(I.wte, I.f32("wte"));
  }
  EMBER_ASSIGN_OR_RETURN(I.wpe, I.f32("wpe"));
  const size_t C = c.n_embd, F = c.n_ff, V = c.n_vocab;
  I.layers.resize(c.n_layer);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = I.layers[l];
    for (BlockNorm n : {BlockNorm::kLn1, BlockNorm::kLn2}) {
      EMBER_ASSIGN_OR_RETURN(L.norm_g[static_cast<int>(n)], I.f32(layer_tensor_name(l, norm_weight(n))));
      EMBER_ASSIGN_OR_RETURN(L.norm_b[static_cast<int>(n)], I.f32(layer_tensor_name(l, norm_bias(n))));
    }
    for (BlockLinear b : kBlockLinears) {
      EMBER_ASSIGN_OR_RETURN(L.linear[static_cast<int>(b)], I.linear(layer_tensor_name(l, linear_weight(b)),
                                                                     layer_tensor_name(l, linear_bias(b)),
                                                                     linear_in(b, C, F), linear_out(b, C, F)));
    }
  }
  if (c.norm == NormPlacement::kPreLN) {
    EMBER_ASSIGN_OR_RETURN(I.ln_f_g, I.f32("ln_f.weight"));
    EMBER_ASSIGN_OR_RETURN(I.ln_f_b, I.f32("ln_f.bias"));
  }
  EMBER_ASSIGN_OR_RETURN(I.lm_head, I.linear(c.tied_lm_head ? "wte" : "lm_head.weight", "", C, V));
  if (c.n_classes > 0) {
    EMBER_ASSIGN_OR_RETURN(I.cls, I.linear("cls.weight", "cls.bias", C, c.n_classes));
  }
  return std::shared_ptr<const Model>(std::move(m));
}

const ModelConfig& Model::config() const { return impl_->config; }
const Tokenizer& Model::tokenizer() const { return impl_->tokenizer; }
const std::map<std::string, std::string>& Model::metadata() const { return impl_->file->metadata(); }
uint64_t Model::file_size() const { return impl_->file->file_size(); }
uint32_t Model::format_version() const { return impl_->file->format_version(); }
const std::string& Model::path() const { return impl_->file->path(); }

uint64_t Model::fingerprint() const {
  const Impl& I = *impl_;
  std::call_once(I.fingerprint_once, [&I] {
    I.fingerprint = xxh64(I.file->base(), I.file->file_size());
    for (const auto& r : I.released) madvise(r.first, r.second, MADV_DONTNEED);
  });
  return I.fingerprint;
}

std::vector<TensorInfo> Model::tensors() const {
  std::vector<TensorInfo> r;
  for (const TensorView& t : impl_->file->tensors()) r.push_back({t.name, t.shape, t.dtype, t.size, static_cast<uint64_t>(t.data - impl_->file->base())});
  return r;
}

}  // namespace ember
