// Fuzz target "safetensors": the header checks of SafetensorsFile (size field, JSON, dtypes, shapes,
// offsets, overlaps, duplicate names, __metadata__), then reading every small tensor as float.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "check.h"
#include "convert/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy: ASan sees any read past the end of the "file".
  std::unique_ptr<uint8_t[]> buf(new uint8_t[size ? size : 1]);
  if (size) std::memcpy(buf.get(), data, size);
  auto f = ember::SafetensorsFile::from_buffer(buf.get(), size, "fuzz.safetensors");
  if (!f.ok()) {
    check(!f.status().message().empty(), "an error without a message");
    return 0;
  }
  for (const ember::SafetensorsFile::Entry& e : f->entries()) {
    check(e.begin <= e.end && e.end <= size, "an entry outside the file");
    check(f->find(e.name) == &e, "find() does not return the entry");
    if (e.numel > (1u << 16)) continue;
    auto v = f->read_f32(e);
    if (v.ok()) check(v->size() == e.numel, "read_f32 returned the wrong number of elements");
  }
  return 0;
}
