#include "convert/safetensors.h"

#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <exception>
#include <set>

#include <nlohmann/json.hpp>

#include "convert/json_excerpt.h"
#include "ember/convert.h"

namespace ember {

namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderSize = 100ull << 20;
constexpr size_t kMaxRank = 8;

size_t dtype_elem_size(const std::string& d) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& s : kSizes)
    if (d == s.first) return s.second;
  return 0;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return true;
  *out = a * b;
  return false;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// A short excerpt of a JSON value for error messages (never the whole header, never recursive).
std::string excerpt(const json& v) { return json_excerpt(v, 60); }

}  // namespace

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    mapped_ = o.mapped_;
    data_ = o.data_;
    entries_ = std::move(o.entries_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.map_size_ = 0;
    o.mapped_ = false;
    o.data_ = nullptr;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() {
  if (map_ && mapped_) munmap(const_cast<uint8_t*>(map_), map_size_);
  map_ = nullptr;
  mapped_ = false;
  map_size_ = 0;
  data_ = nullptr;
}

const SafetensorsFile::Entry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const std::string& P = path;

  EMBER_ASSIGN_OR_RETURN(InputFile in, InputFile::open(path));
  const uint64_t file_size = in.size();
  if (file_size < 8) {
    return invalid_file(P + ": file is " + std::to_string(file_size) +
                        " bytes, too short for the 8-byte safetensors header size");
  }
  if (file_size > SIZE_MAX) return unsupported(P + ": file is too large to map on this host");
  // A private read-only mapping: tensors are converted straight out of it. (If another process
  // truncates the file while we read, the kernel raises SIGBUS; import is a host tool, and checkpoints
  // are not rewritten in place.)
  void* m = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, in.fd(), 0);
  if (m == MAP_FAILED) return io_error(P + ": mmap failed: " + std::strerror(errno));
  f.map_ = static_cast<const uint8_t*>(m);
  f.map_size_ = file_size;
  f.mapped_ = true;
  EMBER_RETURN_IF_ERROR(f.parse());
  return f;
}

Result<SafetensorsFile> SafetensorsFile::from_buffer(const uint8_t* data, size_t size, const std::string& name) {
  SafetensorsFile f;
  f.path_ = name;
  if (size < 8)
    return invalid_file(name + ": file is " + std::to_string(size) + " bytes, too short for the 8-byte safetensors header size");
  f.map_ = data;
  f.map_size_ = size;
  EMBER_RETURN_IF_ERROR(f.parse());
  return f;
}

Status SafetensorsFile::parse() {
  SafetensorsFile& f = *this;
  const std::string& P = path_;
  const uint64_t file_size = map_size_;
  const uint64_t header_size = static_cast<uint64_t>(load_u32(f.map_)) |
                               (static_cast<uint64_t>(load_u32(f.map_ + 4)) << 32);
  if (header_size > file_size - 8)
    return invalid_file(P + ": header size " + std::to_string(header_size) + " exceeds the file (" +
                        std::to_string(file_size) + " bytes)");
  if (header_size > kMaxHeaderSize)
    return invalid_file(P + ": header size " + std::to_string(header_size) + " is larger than the 100 MB limit");
  const uint64_t data_size = file_size - 8 - header_size;
  f.data_ = f.map_ + 8 + header_size;

  // Keys at depth 1 are the tensor names; nlohmann keeps one of two equal keys silently, so the
  // callback is the only place a duplicate can be seen.
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    const char* h = reinterpret_cast<const char*>(f.map_ + 8);
    header = json::parse(h, h + header_size, on_event);
  } catch (const std::exception& e) {
    return invalid_file(P + ": header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) return invalid_file(P + ": tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object()) return invalid_file(P + ": header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return invalid_file(P + ": __metadata__ is not a JSON object");
      for (auto m2 = v.begin(); m2 != v.end(); ++m2) {
        if (!m2.value().is_string())
          return invalid_file(P + ": __metadata__ '" + m2.key() + "' is not a string");
        f.metadata_[m2.key()] = m2.value().get<std::string>();
      }
      continue;
    }
    const std::string T = P + ": tensor '" + name + "'";
    if (!v.is_object()) return invalid_file(T + ": entry is not a JSON object");
    auto d = v.find("dtype");
    auto s = v.find("shape");
    auto o = v.find("data_offsets");
    if (d == v.end() || !d->is_string()) return invalid_file(T + ": missing or non-string 'dtype'");
    if (s == v.end() || !s->is_array()) return invalid_file(T + ": missing or non-array 'shape'");
    if (o == v.end() || !o->is_array() || o->size() != 2)
      return invalid_file(T + ": 'data_offsets' must be an array [begin, end]");

    Entry e;
    e.name = name;
    e.dtype = d->get<std::string>();
    e.elem_size = dtype_elem_size(e.dtype);
    if (e.elem_size == 0) return unsupported(T + ": unsupported dtype '" + e.dtype + "'");
    if (s->size() > kMaxRank) return invalid_file(T + ": shape has " + std::to_string(s->size()) + " dimensions");
    e.numel = 1;
    for (const json& dim : *s) {
      if (!dim.is_number_unsigned())
        return invalid_file(T + ": shape " + excerpt(*s) + " is not a list of non-negative integers");
      e.shape.push_back(dim.get<uint64_t>());
      if (mul_overflows(e.numel, e.shape.back(), &e.numel))
        return invalid_file(T + ": shape " + excerpt(*s) + " overflows");
    }
    if (!(*o)[0].is_number_unsigned() || !(*o)[1].is_number_unsigned())
      return invalid_file(T + ": data_offsets " + excerpt(*o) + " are not non-negative integers");
    e.begin = (*o)[0].get<uint64_t>();
    e.end = (*o)[1].get<uint64_t>();
    const std::string offs = "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) return invalid_file(T + ": " + offs + " are inverted (begin > end)");
    if (e.end > data_size)
      return invalid_file(T + ": " + offs + " exceed the " + std::to_string(data_size) + "-byte data area");
    uint64_t bytes = 0;
    if (mul_overflows(e.numel, e.elem_size, &bytes) || bytes != e.end - e.begin)
      return invalid_file(T + ": " + offs + " hold " + std::to_string(e.end - e.begin) + " bytes but shape " +
                          shape_str(e.shape) + " of " + e.dtype + " needs " +
                          (bytes == 0 && e.numel ? std::string("more than 2^64") : std::to_string(bytes)));
    f.index_[name] = f.entries_.size();
    f.entries_.push_back(std::move(e));
  }

  // Overlapping tensors are harmless to read but mean the header lies; the reference writer packs
  // tensors back to back.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : f.entries_)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      return invalid_file(P + ": tensor '" + by_offset[i]->name + "' overlaps tensor '" + by_offset[i - 1]->name +
                          "' in the data area");
  }
  return Status::Ok();
}

Result<std::vector<float>> SafetensorsFile::read_f32(const Entry& e) const {
  const uint8_t* p = data_ + e.begin;  // open() proved [begin, end) lies in the data area
  std::vector<float> out(e.numel);
  if (e.dtype == "F32") {
    for (uint64_t i = 0; i < e.numel; ++i) {
      const uint32_t u = load_u32(p + 4 * i);
      std::memcpy(&out[i], &u, 4);
    }
  } else if (e.dtype == "F16") {
    for (uint64_t i = 0; i < e.numel; ++i) out[i] = f16_to_f32(load_u16(p + 2 * i));
  } else if (e.dtype == "BF16") {
    for (uint64_t i = 0; i < e.numel; ++i) out[i] = bf16_to_f32(load_u16(p + 2 * i));
  } else {
    return unsupported(path_ + ": tensor '" + e.name + "': unsupported dtype " + e.dtype +
                       " (ember imports F32, F16 and BF16)");
  }
  return out;
}

}  // namespace ember
