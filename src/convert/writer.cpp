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

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (f_) {
    std::fclose(f_);
    f_ = nullptr;
    std::remove(tmp_.c_str());
  }
}

Status AtomicFile::open(const std::string& path) {
  discard();
  path_ = path;
  tmp_ = path + ".tmp." + std::to_string(getpid());
  f_ = std::fopen(tmp_.c_str(), "wbe");  // e: O_CLOEXEC, a child process never inherits it
  if (!f_) return io_error(path + ": cannot create " + tmp_ + ": " + std::strerror(errno));
  pos_ = 0;
  return Status::Ok();
}

Status AtomicFile::write(const void* data, size_t size) {
  if (!f_) return internal_error(path_ + ": write to a file that is not open");
  if (size && std::fwrite(data, 1, size, f_) != size) {
    std::string why = std::strerror(errno);
    discard();
    return io_error(path_ + ": write failed (" + why + "); the previous file, if any, is unchanged");
  }
  pos_ += size;
  return Status::Ok();
}

Status AtomicFile::write_zeros(size_t n) {
  static const char zeros[64] = {};
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    EMBER_RETURN_IF_ERROR(write(zeros, k));
    n -= k;
  }
  return Status::Ok();
}

Status AtomicFile::commit() {
  if (!f_) return internal_error(path_ + ": commit of a file that is not open");
  bool ok = std::fflush(f_) == 0 && fsync(fileno(f_)) == 0;
  std::string why = ok ? "" : std::strerror(errno);
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    if (why.empty()) why = std::strerror(errno);
    std::remove(tmp_.c_str());
    return io_error(path_ + ": could not finish writing (" + why + "); the previous file, if any, is unchanged");
  }
  // The rename is durable once the directory is on disk too (else a power cut can bring back the old
  // name, or neither). Best effort: some file systems refuse fsync on a directory.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Status write_file_atomic(const std::string& path, const void* bytes, size_t size) {
  AtomicFile f;
  EMBER_RETURN_IF_ERROR(f.open(path));
  EMBER_RETURN_IF_ERROR(f.write(bytes, size));
  return f.commit();
}

Status write_model_file(const ModelSpec& spec, const std::string& path) {
  EMBER_RETURN_IF_ERROR(spec.config.validate().with_context(path));
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(path));
  return write_model_file_unchecked(spec, path);
}

Status write_model_file_unchecked(const ModelSpec& spec, const std::string& path) {
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
                                       static_cast<fb::DType>(td.dtype), offset, td.data.size(), scales));
    offset = align_up(offset + td.data.size());
  }
  std::vector<flatbuffers::Offset<fb::KeyValue>> meta;
  for (const auto& kv : spec.metadata) meta.push_back(fb::CreateKeyValue(b, b.CreateString(kv.first), b.CreateString(kv.second)));

  auto root = fb::CreateModel(b, kFormatVersion, cfg, tok, b.CreateVector(tensors), b.CreateVector(meta));
  b.FinishSizePrefixed(root, kFileIdentifier);

  AtomicFile f;
  EMBER_RETURN_IF_ERROR(f.open(path));
  EMBER_RETURN_IF_ERROR(f.write(b.GetBufferPointer(), b.GetSize()));
  EMBER_RETURN_IF_ERROR(f.write_zeros(align_up(f.position()) - f.position()));
  const uint64_t data_start = f.position();
  for (const TensorData& td : spec.tensors) {
    EMBER_RETURN_IF_ERROR(f.write_zeros(data_start + align_up(f.position() - data_start) - f.position()));
    EMBER_RETURN_IF_ERROR(f.write(td.data.data(), td.data.size()));
  }
  return f.commit();
}

Result<ModelSpec> read_model_file(const std::string& path) {
  EMBER_ASSIGN_OR_RETURN(std::unique_ptr<EmberFile> file, EmberFile::open(path));
  ModelSpec spec;
  spec.config = file->config();
  EMBER_ASSIGN_OR_RETURN(spec.tokenizer, file->load_tokenizer());
  spec.metadata = file->metadata();
  for (const TensorView& v : file->tensors()) {
    TensorData td;
    td.name = v.name;
    td.shape = v.shape;
    td.dtype = v.dtype;
    td.data.assign(v.data, v.data + v.size);
    if (v.scales) td.scales.assign(v.scales, v.scales + v.shape[0]);
    spec.tensors.push_back(std::move(td));
  }
  EMBER_RETURN_IF_ERROR(spec.validate().with_context(path));
  return spec;
}

}  // namespace ember
