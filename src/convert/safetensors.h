// safetensors reader for untrusted files (host side, internal to libember_host).
//
//   ember::Result<ember::SafetensorsFile> f = ember::SafetensorsFile::open("model.safetensors");
//   const ember::SafetensorsFile::Entry* e = f->find("wte.weight");
//   ember::Result<std::vector<float>> w = f->read_f32(*e);
//
// open() checks the whole header before anything is read: header size within the file, JSON
// well-formed, every entry with a dtype, non-negative integer shape and data_offsets that lie inside
// the data area, match shape * element size, and do not overlap; names unique. After that every
// read stays in bounds. The file is memory-mapped read-only for the lifetime of the object
// (move-only). Errors name the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ember/status.h"

namespace ember {

class SafetensorsFile {
 public:
  struct Entry {
    std::string name;
    std::string dtype;             // as written: "F32", "F16", "BF16", "I64", ...
    size_t elem_size = 0;          // bytes per element of dtype
    std::vector<uint64_t> shape;
    uint64_t numel = 0;
    uint64_t begin = 0, end = 0;   // byte range within the data area
  };

  static Result<SafetensorsFile> open(const std::string& path);
  // The same checks on a buffer the caller keeps alive for the object's lifetime (fuzzing, tests);
  // `name` stands for the path in messages.
  static Result<SafetensorsFile> from_buffer(const uint8_t* data, size_t size, const std::string& name);

  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }  // in header order
  const Entry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // __metadata__

  // The tensor's elements as float; F32, F16 and BF16 only (others: kUnsupported naming the tensor).
  Result<std::vector<float>> read_f32(const Entry& e) const;

 private:
  SafetensorsFile() = default;
  void release();
  Status parse();  // the header checks, on map_ / map_size_

  std::string path_;
  const uint8_t* map_ = nullptr;  // whole file
  size_t map_size_ = 0;
  bool mapped_ = false;  // map_ is our mmap (open), not the caller's buffer (from_buffer)
  const uint8_t* data_ = nullptr;  // data area: after the 8-byte size and the header
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace ember
