// The .ember writer and the reader back into a ModelSpec (host side). Format: schema/ember.fbs.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "convert/atomic_file.h"
#include "convert/writer.h"
#include "ember/convert.h"
#include "ember_generated.h"
#include "format/ember_file.h"

namespace ember {

Status write_model_file(const ModelSpec& spec, const std::string& path) {
  EMBER_RETURN_IF_ERROR(spec.config.validate().with_context(path));
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(path));
  return write_model_file_unchecked(spec, path);
}

namespace {

// The bytes of a model in memory, with AtomicFile's interface.
class MemorySink {
 public:
  explicit MemorySink(std::vector<uint8_t>* out) : out_(out) {}
  Status write(const void* data, size_t size) {
    try {
      out_->insert(out_->end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
    } catch (const std::bad_alloc&) {
      return internal_error("out of memory serializing a model (" + std::to_string(out_->size()) + " bytes so far)");
    }
    return Status::Ok();
  }
  Status write_zeros(size_t n) {
    static const uint8_t zeros[64] = {};
    for (; n > 0; n -= n < 64 ? n : 64) EMBER_RETURN_IF_ERROR(write(zeros, n < 64 ? n : 64));
    return Status::Ok();
  }
  uint64_t position() const { return out_->size(); }

 private:
  std::vector<uint8_t>* out_;
};

// The file: the size-prefixed FlatBuffers header, then each tensor's data at a 64-byte aligned offset.
template <class Sink>
Status serialize(const ModelSpec& spec, Sink& f) {
  flatbuffers::FlatBufferBuilder b(1 << 16);

  const ModelConfig& c = spec.config;
  auto cfg = fb::CreateConfig(b, c.n_vocab, c.n_ctx, c.n_embd, c.n_head, c.n_layer, c.n_ff, c.norm_eps,
                              static_cast<fb::NormPlacement>(c.norm), static_cast<fb::Activation>(c.activation),
                              c.tied_lm_head, c.n_classes);

  flatbuffers::Offset<fb::Tokenizer> tok;
  const Tokenizer& t = spec.tokenizer;
  if (t.kind() != TokenizerKind::kNone) {
    std::vector<uint8_t> data;
    std::vector<uint32_t> offsets{0};
    for (const std::string& s : t.tokens()) {
      data.insert(data.end(), s.begin(), s.end());
      offsets.push_back(static_cast<uint32_t>(data.size()));
    }
    std::vector<int32_t> merges;
    merges.reserve(t.merges().size() * 2);
    for (const auto& m : t.merges()) {
      merges.push_back(m.first);
      merges.push_back(m.second);
    }
    tok = fb::CreateTokenizer(b, static_cast<fb::TokenizerKind>(t.kind()), b.CreateVector(data),
                              b.CreateVector(offsets), b.CreateVector(merges), t.eot_id());
  }

  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  uint64_t offset = 0;
  for (const TensorData& td : spec.tensors) {
    auto scales = td.dtype == DType::kI8 ? b.CreateVector(td.scales) : flatbuffers::Offset<flatbuffers::Vector<float>>();
    tensors.push_back(fb::CreateTensor(b, b.CreateString(td.name), b.CreateVector(td.shape),
                                       static_cast<fb::DType>(td.dtype), offset, td.data.size(), scales, td.group));
    offset = align_up(offset + td.data.size());
  }
  std::vector<flatbuffers::Offset<fb::KeyValue>> meta;
  for (const auto& kv : spec.metadata) meta.push_back(fb::CreateKeyValue(b, b.CreateString(kv.first), b.CreateString(kv.second)));

  auto root = fb::CreateModel(b, kFormatVersion, cfg, tok, b.CreateVector(tensors), b.CreateVector(meta));
  b.FinishSizePrefixed(root, kFileIdentifier);

  EMBER_RETURN_IF_ERROR(f.write(b.GetBufferPointer(), b.GetSize()));
  EMBER_RETURN_IF_ERROR(f.write_zeros(align_up(f.position()) - f.position()));
  const uint64_t data_start = f.position();
  for (const TensorData& td : spec.tensors) {
    EMBER_RETURN_IF_ERROR(f.write_zeros(data_start + align_up(f.position() - data_start) - f.position()));
    EMBER_RETURN_IF_ERROR(f.write(td.data.data(), td.data.size()));
  }
  return Status::Ok();
}

}  // namespace

Status write_model_file_unchecked(const ModelSpec& spec, const std::string& path) {
  AtomicFile f;
  EMBER_RETURN_IF_ERROR(f.open(path));
  EMBER_RETURN_IF_ERROR(serialize(spec, f));
  return f.commit();
}

Result<std::shared_ptr<const Model>> load_model_spec(const ModelSpec& spec, const std::string& name) {
  EMBER_RETURN_IF_ERROR(spec.config.validate().with_context(name));
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(name));
  std::vector<uint8_t> bytes;
  MemorySink sink(&bytes);
  EMBER_RETURN_IF_ERROR(serialize(spec, sink).with_context(name));
  return Model::load_from_buffer(bytes.data(), bytes.size(), name);
}

Result<ModelSpec> read_model_file(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmberFile> file, EmberFile::open(path));
  ModelSpec spec;
  spec.config = file->config();
  EMBER_ASSIGN_OR_RETURN(spec.tokenizer, file->load_tokenizer());
  spec.metadata = file->metadata();
  spec.source_files = {path};
  for (const TensorView& v : file->tensors()) {
    TensorData td;
    td.name = v.name;
    td.shape = v.shape;
    td.dtype = v.dtype;
    td.data.assign(v.data, v.data + v.size);
    if (v.scales) td.scales.assign(v.scales, v.scales + v.shape[0]);
    td.group = static_cast<uint32_t>(v.group);
    spec.tensors.push_back(std::move(td));
  }
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(path));
  return spec;
}

}  // namespace ember
