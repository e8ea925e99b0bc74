// Reading .ember files: mmap, FlatBuffers verification, then semantic checks, then zero-copy views.
// Internal to libember; the writer lives in libember_host (src/convert/writer.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ember/config.h"
#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

constexpr uint32_t kFormatVersion = 1;
constexpr size_t kTensorAlignment = 64;
constexpr char kFileIdentifier[] = "EMBR";

struct TensorView {
  std::string name;
  std::vector<uint64_t> shape;
  DType dtype = DType::kF32;
  const uint8_t* data = nullptr;  // 64-byte aligned pointer into the mapping
  uint64_t size = 0;              // bytes
  const float* scales = nullptr;  // kI8: shape[0] entries (may be unaligned-safe copy, see below)
  uint64_t group = 0;             // kI4: input channels per scale (format/q4.h)
  uint64_t n_elements() const;
};

// Rounds `n` up to a multiple of kTensorAlignment.
inline uint64_t align_up(uint64_t n) { return (n + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment; }

class EmberFile {
 public:
  // Maps and fully verifies `path`. Every later access is in bounds.
  static Result<std::unique_ptr<EmberFile>> open(const std::string& path);
  // Verifies a buffer that the caller keeps alive (fuzzing, tests). `name` appears in messages.
  static Result<std::unique_ptr<EmberFile>> from_buffer(const uint8_t* data, size_t size, std::string name);
  // Verifies a copy of `data` in 64-byte aligned memory that the EmberFile owns.
  static Result<std::unique_ptr<EmberFile>> from_copy(const void* data, size_t size, std::string name);
  ~EmberFile();
  EmberFile(const EmberFile&) = delete;
  EmberFile& operator=(const EmberFile&) = delete;

  const std::string& path() const { return path_; }
  bool is_mapped() const { return mapped_; }
  uint64_t file_size() const { return size_; }
  const uint8_t* base() const { return base_; }  // first byte of the file (mapping or buffer)
  uint32_t format_version() const { return version_; }
  const ModelConfig& config() const { return config_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  TokenizerKind tokenizer_kind() const { return tokenizer_kind_; }
  // Builds the tokenizer stored in the file (kind kNone if there is none).
  Result<Tokenizer> load_tokenizer() const;

 private:
  EmberFile() = default;
  Status parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  bool mapped_ = false;
  void* owned_ = nullptr;  // from_copy(): the aligned copy, freed on destruction
  uint32_t version_ = 0;
  ModelConfig config_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
  TokenizerKind tokenizer_kind_ = TokenizerKind::kNone;
  const void* fb_tokenizer_ = nullptr;  // ember::fb::Tokenizer*, verified
};

}  // namespace ember
