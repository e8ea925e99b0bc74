// ember/convert.h - host side: import trained checkpoints and write .ember files.
//
//   ember::Result<ember::ModelSpec> spec = ember::import_model("gpt2-dir/");   // or .safetensors / .ember
//   if (spec.ok()) ember::Status s = ember::write_model_file(*spec, "gpt2.ember");
//
// A ModelSpec is an in-memory model: config, tokenizer, float tensors (canonical names, [out, in]) and
// metadata. write_model_file writes to "<path>.tmp.<pid>" and renames, so a failed write never leaves a
// half-written file at `path`. Not part of the device runtime (libember); lives in libember_host.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ember/config.h"
#include "ember/export.h"
#include "ember/model.h"
#include "ember/status.h"
#include "ember/tokenizer.h"

namespace ember {

struct TensorData {
  std::string name;
  std::vector<uint64_t> shape;
  DType dtype = DType::kF32;
  std::vector<uint8_t> data;   // little-endian elements of `dtype`
  std::vector<float> scales;   // kI8 only: one per shape[0] row, f = scale * q
  uint32_t group = 0;          // kI4 only: input channels per scale (data holds nibbles and scales)
};

// A tensor's values as floats, whatever its dtype (f16 and bf16 widened, int8 and int4 dequantized).
EMBER_API std::vector<float> tensor_values(const TensorData& t);

struct EMBER_API ModelSpec {
  ModelConfig config;
  Tokenizer tokenizer;  // kind kNone if the checkpoint came without one
  std::vector<TensorData> tensors;
  std::map<std::string, std::string> metadata;  // e.g. source, license, recipe
  // The files the import read (checkpoint, config.json, tokenizer files; or the .ember file): a tool
  // checks that its output is none of them. Not written to the model file.
  std::vector<std::string> source_files;

  const TensorData* find(const std::string& name) const;
  // Every tensor required_tensors(config) names exists with the right shape; no extras.
  Status validate() const;
};

// Imports a checkpoint: a directory (model.safetensors + config.json [+ vocab.json/merges.txt or
// encoder.json/vocab.bpe or vocab_chars.json]), a single .safetensors file (config.json and tokenizer files are
// looked for beside it), or an .ember file (read back to float). The naming (Hugging Face gpt2,
// Hugging Face openai-gpt, nanoGPT) is detected from config.json's model_type and the tensor names.
EMBER_API Result<ModelSpec> import_model(const std::string& path);

// Reads an .ember file into a float-or-as-stored ModelSpec (tensors keep their dtype).
EMBER_API Result<ModelSpec> read_model_file(const std::string& path);

// Writes `spec` as an .ember file (validated first). Atomic: temporary file + rename.
EMBER_API Status write_model_file(const ModelSpec& spec, const std::string& path);
// The runtime Model of `spec` without a file: the bytes write_model_file would write, loaded with
// Model::load_from_buffer (validated and verified the same way). `name` stands for the path in messages.
EMBER_API Result<std::shared_ptr<const Model>> load_model_spec(const ModelSpec& spec, const std::string& name);

// Tokenizer files. GPT-2 BPE from vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe
// (OpenAI); both use GPT-2's byte-to-unicode token spelling. A character vocabulary file is JSON: an
// array of one-character strings in id order, or an object mapping each character to its id
// (nanoGPT's meta.pkl itos/stoi, written as JSON).
EMBER_API Result<Tokenizer> load_gpt2_tokenizer(const std::string& vocab_json_path, const std::string& merges_path);
EMBER_API Result<Tokenizer> load_char_tokenizer(const std::string& path);

// Writes `bytes` to `path` atomically: "<path>.tmp.<pid>", fsync, rename over `path`, fsync of the
// directory. On any failure (full disk, I/O error) the temporary is removed and `path` keeps its previous
// contents; the message says so. Used for every file ember writes. Concurrent writers of the same path
// must be different processes (the temporary's name holds the pid); different paths are independent.
EMBER_API Status write_file_atomic(const std::string& path, const void* bytes, size_t size);
// Removes the temporaries "<path>.tmp.<pid>" that a killed writer of `path` left behind: those whose
// process no longer exists (a live writer's stays). Returns how many it removed. For a program that
// resumes after a kill -9 (ember-train pretrain --resume calls it for every file it writes).
EMBER_API size_t remove_stale_temporaries(const std::string& path);
// For programs that write with the functions above: installs handlers for SIGINT, SIGTERM and SIGHUP
// that remove the temporaries of writes in progress, print "<prog>: terminated (SIGTERM); ..." and
// end the process as the signal would (signals already ignored stay ignored); and ignores SIGXFSZ, so
// that a write past `ulimit -f` fails with a message and removes its temporary like a full disk.
// ember's tools call it first thing. A library never installs signal handlers by itself: call it from
// main(), before other threads start, or not at all.
EMBER_API void remove_temporaries_on_signals(const char* prog);

}  // namespace ember
