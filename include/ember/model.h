// ember/model.h - an immutable, loaded GPT model.
//
//   auto model = ember::Model::load("models/shakespeare.ember");
//   if (!model.ok()) { /* model.status().message() names the file and the problem */ }
//   auto session = ember::Session::create(*model, {});   // see session.h
//
// load() maps the file read-only, verifies it (FlatBuffers verifier, then: every tensor the config
// needs exists with the right shape and dtype, data lies inside the file, sizes cannot overflow,
// scales are finite) and prepares the compute: XNNPACK operators are created and weights packed
// once here, never per token.
// Lifetime: share it with std::shared_ptr; sessions keep it alive. The file stays mapped while the
// model lives: it must not be truncated or rewritten in place meanwhile (the kernel would raise SIGBUS
// on the next access); ember's own writers replace a file by rename, which is safe.
// Thread safety: load() may run in several threads at once (also on the same file). A loaded Model is
// immutable: all const methods, tokenizer() included, may be called from any thread. Several sessions
// may share one model from several threads. On an all-int8 model their forward passes run in parallel
// (the weights are read-only, the scratch is per session); a model with float linear layers (XNNPACK
// operators, which hold bound pointers between setup and run) serializes them on its compute lock.
// Either way each session gets exactly what it gets running alone (tests/unit/test_threads.cpp: 4
// threads, float and int8).
// Untrusted files: load() is safe on any bytes (fuzzed: tests/fuzz, README "Security"). It does not
// check float weight values; a model with NaN or inf weights runs and produces NaN logits, which the
// Sampler never picks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ember/config.h"
#include "ember/export.h"
#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

struct ModelAccess;

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> shape;
  DType dtype;
  uint64_t bytes;
  uint64_t offset;  // byte offset of the data in the file (64-byte aligned)
};

class EMBER_API Model {
 public:
  static Result<std::shared_ptr<const Model>> load(const std::string& path);
  // The same from the bytes of a model file in memory (embedded in a firmware image, received over a
  // network, or built by libember_host's load_model_spec), verified exactly as load() verifies a file.
  // The bytes are copied into 64-byte aligned memory the model owns: `data` may be freed after the call.
  // `name` stands for the path in messages and path().
  static Result<std::shared_ptr<const Model>> load_from_buffer(const void* data, size_t size,
                                                               const std::string& name = "<memory>");
  // The same without the copy, for bytes the caller keeps alive and unchanged for as long as the model
  // or any of its sessions lives (a model in flash executed in place, a caller's own mapping): tensors are
  // read where they lie. `data` must be 64-byte aligned (the file's tensor alignment); otherwise
  // kInvalidArgument, naming the address's offset from the alignment. Verified like a file.
  static Result<std::shared_ptr<const Model>> load_from_memory(const void* data, size_t size,
                                                               const std::string& name = "<memory>");
  ~Model();

  const ModelConfig& config() const;
  const Tokenizer& tokenizer() const;
  const std::map<std::string, std::string>& metadata() const;
  std::vector<TensorInfo> tensors() const;
  uint64_t file_size() const;
  uint32_t format_version() const;
  const std::string& path() const;  // the path given to load(), or the name given with the bytes
  // A 64-bit hash (XXH64) of the model's bytes: the same for a file and a copy of it in memory, different
  // for any change of weights, config, tokenizer or metadata. Session states carry it to refuse a restore
  // into another model. Computed on the first call (reads the whole model once: about 10 ms per 100 MB),
  // then cached; thread-safe.
  uint64_t fingerprint() const;

 private:
  friend struct ModelAccess;  // the library's own route to the internals (src/model/model_impl.h)
  struct Impl;
  Model();
  std::unique_ptr<Impl> impl_;
};

}  // namespace ember
