#include "format/ember_file.h"

#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "ember_generated.h"
#include "format/q4.h"

namespace ember {

uint64_t TensorView::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

namespace {

// a * b without overflow; false if it would overflow.
bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}


}  // namespace

EmberFile::~EmberFile() {
  if (mapped_ && base_) munmap(const_cast<uint8_t*>(base_), size_);
  std::free(owned_);
}

Result<std::unique_ptr<EmberFile>> EmberFile::open(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(InputFile in, InputFile::open(path));
  if (in.size() < 16)
    return invalid_file(path + ": file is " + std::to_string(in.size()) + " bytes, too small for an ember model");
  if (in.size() > SIZE_MAX) return unsupported(path + ": file is too large to map on this host");
  void* p = mmap(nullptr, static_cast<size_t>(in.size()), PROT_READ, MAP_PRIVATE, in.fd(), 0);
  if (p == MAP_FAILED) return io_error(path + ": mmap failed: " + std::strerror(errno));
  std::unique_ptr<EmberFile> f(new EmberFile());
  f->path_ = path;
  f->base_ = static_cast<const uint8_t*>(p);
  f->size_ = in.size();
  f->mapped_ = true;
  EMBER_RETURN_IF_ERROR(f->parse());
  return f;
}

Result<std::unique_ptr<EmberFile>> EmberFile::from_buffer(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<EmberFile> f(new EmberFile());
  f->path_ = std::move(name);
  f->base_ = data;
  f->size_ = size;
  if (size < 16) return invalid_file(f->path_ + ": file is " + std::to_string(size) + " bytes, too small for an ember model");
  if (reinterpret_cast<uintptr_t>(data) % kTensorAlignment != 0)
    return invalid_argument(f->path_ + ": buffer must be 64-byte aligned");
  EMBER_RETURN_IF_ERROR(f->parse());
  return f;
}

Result<std::unique_ptr<EmberFile>> EmberFile::from_copy(const void* data, size_t size, std::string name) {
  if (!data && size) return invalid_argument(name + ": null buffer of " + std::to_string(size) + " bytes");
  if (size < 16) return invalid_file(name + ": file is " + std::to_string(size) + " bytes, too small for an ember model");
  if (size > SIZE_MAX - kTensorAlignment) return invalid_argument(name + ": buffer too large");
  void* copy = std::aligned_alloc(kTensorAlignment, (size + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment);
  if (!copy) return internal_error(name + ": out of memory copying " + std::to_string(size) + " bytes");
  std::memcpy(copy, data, size);
  std::unique_ptr<EmberFile> f(new EmberFile());
  f->owned_ = copy;
  f->path_ = std::move(name);
  f->base_ = static_cast<const uint8_t*>(copy);
  f->size_ = size;
  EMBER_RETURN_IF_ERROR(f->parse());
  return f;
}

Status EmberFile::parse() {
  const std::string& P = path_;
  uint32_t fb_size;
  std::memcpy(&fb_size, base_, 4);
  if (std::memcmp(base_ + 8, kFileIdentifier, 4) != 0)
    return invalid_file(P + ": not an ember model (file identifier is not \"EMBR\")");
  if (static_cast<uint64_t>(fb_size) + 4 > size_)
    return invalid_file(P + ": truncated: header says " + std::to_string(fb_size + 4ull) + " bytes of metadata, file has " +
                        std::to_string(size_));
  flatbuffers::Verifier verifier(base_, 4ull + fb_size, /*max_depth=*/64, /*max_tables=*/10000000);
  if (!verifier.VerifySizePrefixedBuffer<fb::Model>(kFileIdentifier))
    return invalid_file(P + ": corrupted: FlatBuffers verification of the model header failed");
  const fb::Model* m = flatbuffers::GetSizePrefixedRoot<fb::Model>(base_);
  version_ = m->format_version();
  if (version_ != kFormatVersion)
    return unsupported(P + ": format version " + std::to_string(version_) + ", this build reads version " +
                       std::to_string(kFormatVersion));

  const fb::Config* c = m->config();
  ModelConfig& cfg = config_;
  cfg.n_vocab = c->n_vocab();
  cfg.n_ctx = c->n_ctx();
  cfg.n_embd = c->n_embd();
  cfg.n_head = c->n_head();
  cfg.n_layer = c->n_layer();
  cfg.n_ff = c->n_ff();
  cfg.norm_eps = c->norm_eps();
  cfg.norm = static_cast<NormPlacement>(c->norm());
  cfg.activation = static_cast<Activation>(c->activation());
  cfg.tied_lm_head = c->tied_lm_head();
  cfg.n_classes = c->n_classes();
  EMBER_RETURN_IF_ERROR(cfg.validate().with_context(P));

  const uint64_t data_start = align_up(4ull + fb_size);
  const uint64_t data_size = size_ > data_start ? size_ - data_start : 0;
  std::set<std::string> seen;
  tensors_.reserve(m->tensors()->size());
  for (const fb::Tensor* t : *m->tensors()) {
    TensorView v;
    v.name = t->name()->str();
    const std::string T = P + ": tensor '" + v.name + "'";
    if (!seen.insert(v.name).second) return invalid_file(T + " appears twice");
    if (t->shape()->size() == 0 || t->shape()->size() > 4) return invalid_file(T + ": rank must be 1..4");
    uint64_t n = 1;
    // The verifier checks the alignment of a vector's length, not of its 8-byte elements: a crafted
    // file can place them anywhere, so they are copied out rather than loaded in place.
    const uint8_t* dims = t->shape()->Data();
    for (flatbuffers::uoffset_t i = 0; i < t->shape()->size(); ++i) {
      uint64_t d;
      std::memcpy(&d, dims + i * sizeof d, sizeof d);
      d = flatbuffers::EndianScalar(d);
      v.shape.push_back(d);
    }
    for (uint64_t d : v.shape)
      if (!mul_ok(n, d, &n)) return invalid_file(T + ": shape " + shape_str(v.shape) + " overflows");
    uint8_t dt = static_cast<uint8_t>(t->dtype());
    if (dt > static_cast<uint8_t>(DType::kI4)) return invalid_file(T + ": unknown dtype " + std::to_string(dt));
    v.dtype = static_cast<DType>(dt);
    uint64_t bytes;
    if (v.dtype == DType::kI4) {
      EMBER_ASSIGN_OR_RETURN(bytes, q4_checked_bytes(T, v.shape, t->group_size()));
      v.group = t->group_size();
    } else if (t->group_size() != 0) {
      return invalid_file(T + ": group_size given for a " + std::string(dtype_name(v.dtype)) + " tensor");
    } else if (!mul_ok(n, dtype_size(v.dtype), &bytes)) {
      return invalid_file(T + ": size overflows");
    }
    if (t->size() != bytes)
      return invalid_file(T + ": size " + std::to_string(t->size()) + " bytes does not match shape " + shape_str(v.shape) +
                          " of " + dtype_name(v.dtype) + " (" + std::to_string(bytes) + " bytes)");
    if (t->offset() % kTensorAlignment != 0) return invalid_file(T + ": data offset is not 64-byte aligned");
    if (t->offset() > data_size || bytes > data_size - t->offset())
      return invalid_file(T + ": data [" + std::to_string(t->offset()) + ", +" + std::to_string(bytes) +
                          ") lies outside the file's " + std::to_string(data_size) + "-byte data section (truncated?)");
    v.data = base_ + data_start + t->offset();
    v.size = bytes;
    if (v.dtype == DType::kI8) {
      if (!t->scales() || t->scales()->size() != v.shape[0])
        return invalid_file(T + ": int8 tensor needs " + std::to_string(v.shape[0]) + " scales");
      v.scales = t->scales()->data();
      for (uint64_t i = 0; i < v.shape[0]; ++i)
        if (!std::isfinite(v.scales[i]) || v.scales[i] < 0.0f)
          return invalid_file(T + ": scale " + std::to_string(i) + " is not a finite non-negative number");
    } else if (t->scales() && t->scales()->size() != 0) {
      return invalid_file(T + ": scales given for a " + std::string(dtype_name(v.dtype)) + " tensor");
    } else if (v.dtype == DType::kI4) {
      EMBER_RETURN_IF_ERROR(q4_check_scales(T, v.data, v.shape[0], v.shape[1], v.group));
    }
    tensors_.push_back(std::move(v));
  }

  if (m->metadata())
    for (const fb::KeyValue* kv : *m->metadata()) metadata_[kv->key()->str()] = kv->value() ? kv->value()->str() : "";

  if (const fb::Tokenizer* tk = m->tokenizer()) {
    uint8_t k = static_cast<uint8_t>(tk->kind());
    if (k > static_cast<uint8_t>(TokenizerKind::kChars)) return invalid_file(P + ": tokenizer: unknown kind");
    tokenizer_kind_ = static_cast<TokenizerKind>(k);
    fb_tokenizer_ = tk;
  }
  return Status::Ok();
}

const TensorView* EmberFile::find(const std::string& name) const {
  for (const TensorView& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Result<Tokenizer> EmberFile::load_tokenizer() const {
  const std::string T = path_ + ": tokenizer";
  if (tokenizer_kind_ == TokenizerKind::kNone) return Tokenizer();
  const auto* tk = static_cast<const fb::Tokenizer*>(fb_tokenizer_);
  if (!tk->token_data() || !tk->token_offsets() || tk->token_offsets()->size() < 2)
    return invalid_file(T + ": token table is missing");
  const auto* offs = tk->token_offsets();
  const size_t n = offs->size() - 1;
  if (n > config_.n_vocab)
    return invalid_file(T + ": " + std::to_string(n) + " tokens exceed n_vocab " + std::to_string(config_.n_vocab));
  std::vector<std::string> tokens(n);
  const size_t data_n = tk->token_data()->size();
  const char* data = reinterpret_cast<const char*>(tk->token_data()->data());
  for (size_t i = 0; i < n; ++i) {
    uint32_t a = offs->Get(i), b = offs->Get(i + 1);
    if (a > b || b > data_n) return invalid_file(T + ": token " + std::to_string(i) + " has a bad offset range");
    tokens[i].assign(data + a, b - a);
  }
  if (tokenizer_kind_ == TokenizerKind::kChars) {
    Result<Tokenizer> r = Tokenizer::chars(std::move(tokens));
    if (!r.ok()) return r.status().with_context(T);
    return r;
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  if (tk->merges()) {
    if (tk->merges()->size() % 2 != 0) return invalid_file(T + ": merges has an odd number of ids");
    merges.reserve(tk->merges()->size() / 2);
    for (size_t i = 0; i + 1 < tk->merges()->size(); i += 2) merges.emplace_back(tk->merges()->Get(i), tk->merges()->Get(i + 1));
  }
  Result<Tokenizer> r = Tokenizer::gpt2_bpe(std::move(tokens), std::move(merges), tk->eot_id());
  if (!r.ok()) return r.status().with_context(T);
  return r;
}

}  // namespace ember
