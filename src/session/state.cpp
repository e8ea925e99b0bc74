// The session state format. Everything is read through memcpy from offsets checked against the size
// first: a state is hostile bytes until its sizes, version, checksums and values are verified (fuzzed:
// tests/fuzz/fuzz_session_state.cpp).
#include "session/state.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/hash.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the session state format is little-endian; this target is not"
#endif

namespace ember {
namespace {

constexpr char kMagic[8] = {'E', 'M', 'B', 'R', 'S', 'T', 'A', 'T'};
constexpr uint32_t kFlagLogits = 1, kFlagHidden = 2;
// Field offsets in the fixed header.
enum : size_t {
  kOffVersion = 8, kOffHeaderBytes = 12, kOffFingerprint = 16, kOffModelBytes = 24, kOffKvType = 32,
  kOffNVocab = 36, kOffNCtx = 40, kOffNEmbd = 44, kOffNHead = 48, kOffNLayer = 52, kOffNPast = 56,
  kOffFlags = 64, kOffNameBytes = 68, kOffPayloadBytes = 72, kOffPayloadHash = 80, kOffHeaderHash = 88,
};
static_assert(kOffHeaderHash + 8 == kStateHeaderBytes, "header layout");

template <typename T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}
template <typename T>
void put(uint8_t* p, size_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

std::string model_name(const Model& m) { return m.path().empty() ? std::string("<unnamed>") : m.path(); }

size_t head_dim(const StateView& s) { return s.n_embd / s.n_head; }

// Bytes of one K (or V) block of n rows of one layer and head.
size_t kv_block_bytes(const StateView& s, size_t n) {
  const size_t D = head_dim(s);
  return s.kv_type == KvType::kInt8 ? n * D + n * sizeof(float) : n * D * sizeof(float);
}

size_t payload_bytes(const StateView& s, size_t n_past, uint32_t flags) {
  size_t b = n_past * sizeof(int32_t);
  if (flags & kFlagLogits) b += s.n_vocab * sizeof(float);
  if (flags & kFlagHidden) b += s.n_embd * sizeof(float);
  return b + s.n_layer * s.n_head * 2 * kv_block_bytes(s, n_past);
}

uint32_t flags_of(const StateView& s) {
  return (s.logits ? kFlagLogits : 0) | (s.has_hidden ? kFlagHidden : 0);
}

// Header checksum: XXH64 of the header and the name with the checksum field itself read as zero.
uint64_t header_hash(const uint8_t* p, size_t header_bytes) {
  std::vector<uint8_t> h(p, p + header_bytes);
  std::memset(h.data() + kOffHeaderHash, 0, 8);
  return xxh64(h.data(), h.size());
}

// Copies one (layer, head)'s K or V rows between a session's buffers and a state, in either direction.
struct KvBlock {
  float* f32;      // f32 cache rows of this (layer, head), or null
  int8_t* q8;      // int8 cache rows, or null
  float* scale;    // their scales
};
KvBlock block(const StateView& s, bool is_v, size_t layer, size_t h) {
  const size_t row0 = (layer * s.n_head + h) * s.n_ctx, D = head_dim(s);
  if (s.kv_type == KvType::kInt8)
    return {nullptr, (is_v ? s.v_q8 : s.k_q8) + row0 * D, (is_v ? s.v_scale : s.k_scale) + row0};
  return {(is_v ? s.v : s.k) + row0 * D, nullptr, nullptr};
}

}  // namespace

size_t state_bytes(const StateView& s) {
  const size_t name = model_name(*s.model).size();
  return kStateHeaderBytes + (name > kStateMaxNameBytes ? kStateMaxNameBytes : name) +
         payload_bytes(s, s.n_past, flags_of(s));
}

Status write_state(const StateView& s, void* dst, size_t capacity, size_t* written) {
  const size_t need = state_bytes(s);
  if (written) *written = need;
  if (!dst) return invalid_argument("save_state: null destination buffer");
  if (capacity < need)
    return invalid_argument("save_state: the state needs " + std::to_string(need) + " bytes, the buffer holds " +
                            std::to_string(capacity));
  std::string name = model_name(*s.model);
  if (name.size() > kStateMaxNameBytes) name.resize(kStateMaxNameBytes);
  const uint32_t flags = flags_of(s);
  const size_t header = kStateHeaderBytes + name.size(), payload = payload_bytes(s, s.n_past, flags);
  auto* p = static_cast<uint8_t*>(dst);
  std::memset(p, 0, kStateHeaderBytes);
  std::memcpy(p, kMagic, 8);
  put<uint32_t>(p, kOffVersion, kStateVersion);
  put<uint32_t>(p, kOffHeaderBytes, static_cast<uint32_t>(header));
  put<uint64_t>(p, kOffFingerprint, s.model->fingerprint());
  put<uint64_t>(p, kOffModelBytes, s.model->file_size());
  put<uint32_t>(p, kOffKvType, s.kv_type == KvType::kInt8 ? 1u : 0u);
  put<uint32_t>(p, kOffNVocab, static_cast<uint32_t>(s.n_vocab));
  put<uint32_t>(p, kOffNCtx, static_cast<uint32_t>(s.n_ctx));
  put<uint32_t>(p, kOffNEmbd, static_cast<uint32_t>(s.n_embd));
  put<uint32_t>(p, kOffNHead, static_cast<uint32_t>(s.n_head));
  put<uint32_t>(p, kOffNLayer, static_cast<uint32_t>(s.n_layer));
  put<uint64_t>(p, kOffNPast, s.n_past);
  put<uint32_t>(p, kOffFlags, flags);
  put<uint32_t>(p, kOffNameBytes, static_cast<uint32_t>(name.size()));
  put<uint64_t>(p, kOffPayloadBytes, payload);
  std::memcpy(p + kStateHeaderBytes, name.data(), name.size());

  uint8_t* q = p + header;
  auto out = [&q](const void* src, size_t n) {
    if (n) std::memcpy(q, src, n);
    q += n;
  };
  const size_t n = s.n_past, D = head_dim(s);
  out(s.tokens, n * sizeof(int32_t));
  if (flags & kFlagLogits) out(s.logits, s.n_vocab * sizeof(float));
  if (flags & kFlagHidden) out(s.hidden, s.n_embd * sizeof(float));
  for (size_t l = 0; l < s.n_layer; ++l)
    for (size_t h = 0; h < s.n_head; ++h)
      for (bool is_v : {false, true}) {
        const KvBlock b = block(s, is_v, l, h);
        if (b.q8) {
          out(b.q8, n * D);
          out(b.scale, n * sizeof(float));
        } else {
          out(b.f32, n * D * sizeof(float));
        }
      }
  put<uint64_t>(p, kOffPayloadHash, xxh64(p + header, payload));
  put<uint64_t>(p, kOffHeaderHash, header_hash(p, header));
  return Status::Ok();
}

Result<StateRead> read_state(const StateView& into, const void* data, size_t size) {
  const std::string E = "session state: ";
  if (!data) return invalid_argument(E + "null buffer of " + std::to_string(size) + " bytes");
  const auto* p = static_cast<const uint8_t*>(data);
  if (size < kStateHeaderBytes)
    return invalid_file(E + std::to_string(size) + " bytes, too short for its " + std::to_string(kStateHeaderBytes) +
                        "-byte header (truncated, or not a state)");
  if (std::memcmp(p, kMagic, 8) != 0) return invalid_file(E + "not an ember session state (no \"EMBRSTAT\" magic)");
  const uint32_t version = get<uint32_t>(p, kOffVersion);
  if (version != kStateVersion)
    return unsupported(E + "format version " + std::to_string(version) + "; this ember reads version " +
                       std::to_string(kStateVersion));
  const uint32_t name_bytes = get<uint32_t>(p, kOffNameBytes), header = get<uint32_t>(p, kOffHeaderBytes);
  if (name_bytes > kStateMaxNameBytes || header != kStateHeaderBytes + name_bytes)
    return invalid_file(E + "inconsistent header (name of " + std::to_string(name_bytes) + " bytes, header of " +
                        std::to_string(header) + ")");
  if (size < header)
    return invalid_file(E + "truncated: " + std::to_string(size) + " bytes, the header alone is " + std::to_string(header));
  if (get<uint64_t>(p, kOffHeaderHash) != header_hash(p, header))
    return invalid_file(E + "header checksum mismatch (corrupted)");

  // Bound to the model that made it: same bytes, same fingerprint.
  const Model& m = *into.model;
  const std::string saved_name(reinterpret_cast<const char*>(p + kStateHeaderBytes), name_bytes);
  const uint64_t fp = get<uint64_t>(p, kOffFingerprint), model_bytes = get<uint64_t>(p, kOffModelBytes);
  if (fp != m.fingerprint() || model_bytes != m.file_size())
    return invalid_argument(E + "it was saved from model '" + saved_name + "' (fingerprint " + hex(fp) + ", " +
                            std::to_string(model_bytes) + " bytes) and cannot be restored into a session of model '" +
                            model_name(m) + "' (fingerprint " + hex(m.fingerprint()) + ", " +
                            std::to_string(m.file_size()) + " bytes): a state belongs to the model that made it");
  const uint32_t kv = get<uint32_t>(p, kOffKvType);
  if (kv > 1) return invalid_file(E + "unknown KV cache type " + std::to_string(kv));
  const KvType kv_type = kv == 1 ? KvType::kInt8 : KvType::kF32;
  if (kv_type != into.kv_type)
    return invalid_argument(E + "it holds a " + kv_type_name(kv_type) + " KV cache, this session's is " +
                            kv_type_name(into.kv_type) + " (create the session with kv_type " + kv_type_name(kv_type) + ")");
  const struct {
    const char* name;
    size_t off, want;
  } dims[] = {{"n_vocab", kOffNVocab, into.n_vocab}, {"n_ctx", kOffNCtx, into.n_ctx}, {"n_embd", kOffNEmbd, into.n_embd},
              {"n_head", kOffNHead, into.n_head}, {"n_layer", kOffNLayer, into.n_layer}};
  for (const auto& d : dims) {
    const uint32_t got = get<uint32_t>(p, d.off);
    if (got != d.want)
      return invalid_file(E + d.name + " " + std::to_string(got) + " differs from the model's " + std::to_string(d.want));
  }
  const uint64_t n_past = get<uint64_t>(p, kOffNPast);
  if (n_past > into.n_ctx)
    return invalid_file(E + "n_past " + std::to_string(n_past) + " exceeds n_ctx " + std::to_string(into.n_ctx));
  const uint32_t flags = get<uint32_t>(p, kOffFlags);
  if (flags & ~(kFlagLogits | kFlagHidden)) return invalid_file(E + "unknown flags " + std::to_string(flags));
  // Sizes from the session's own dimensions (now known equal) and n_past <= n_ctx: no overflow.
  const size_t n = static_cast<size_t>(n_past), payload = payload_bytes(into, n, flags);
  if (get<uint64_t>(p, kOffPayloadBytes) != payload)
    return invalid_file(E + "payload of " + std::to_string(get<uint64_t>(p, kOffPayloadBytes)) + " bytes, expected " +
                        std::to_string(payload) + " for n_past " + std::to_string(n));
  if (size - header != payload)
    return invalid_file(E + std::to_string(size) + " bytes, expected " + std::to_string(header + payload) +
                        (size - header < payload ? " (truncated)" : " (trailing bytes)"));
  const uint8_t* q = p + header;
  if (get<uint64_t>(p, kOffPayloadHash) != xxh64(q, payload))
    return invalid_file(E + "payload checksum mismatch (corrupted)");

  // Values: token ids inside the vocabulary, int8 rows in [-127, 127] as quantize_rows_q8 writes them
  // (the int8 kernels' sign tricks rely on it).
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = get<int32_t>(q, i * sizeof(int32_t));
    if (id < 0 || static_cast<size_t>(id) >= into.n_vocab)
      return invalid_file(E + "token " + std::to_string(id) + " at position " + std::to_string(i) +
                          " is outside the vocabulary [0, " + std::to_string(into.n_vocab) + ")");
  }
  const size_t D = head_dim(into);
  size_t kv_at = n * sizeof(int32_t) + ((flags & kFlagLogits) ? into.n_vocab * sizeof(float) : 0) +
                 ((flags & kFlagHidden) ? into.n_embd * sizeof(float) : 0);
  if (kv_type == KvType::kInt8) {
    for (size_t b = 0, at = kv_at; b < into.n_layer * into.n_head * 2; ++b, at += kv_block_bytes(into, n))
      for (size_t i = 0; i < n * D; ++i)
        if (static_cast<int8_t>(q[at + i]) == -128)
          return invalid_file(E + "an int8 key or value of -128 (the cache holds [-127, 127])");
  }

  // Verified: copy.
  auto in = [&q](void* dst, size_t bytes) {
    if (bytes) std::memcpy(dst, q, bytes);
    q += bytes;
  };
  in(into.tokens, n * sizeof(int32_t));
  if (flags & kFlagLogits) in(into.logits, into.n_vocab * sizeof(float));
  if (flags & kFlagHidden) in(into.hidden, into.n_embd * sizeof(float));
  for (size_t l = 0; l < into.n_layer; ++l)
    for (size_t h = 0; h < into.n_head; ++h)
      for (bool is_v : {false, true}) {
        const KvBlock b = block(into, is_v, l, h);
        if (b.q8) {
          in(b.q8, n * D);
          in(b.scale, n * sizeof(float));
        } else {
          in(b.f32, n * D * sizeof(float));
        }
      }
  StateRead r;
  r.n_past = n;
  r.has_logits = (flags & kFlagLogits) != 0;
  r.has_hidden = (flags & kFlagHidden) != 0;
  return r;
}

}  // namespace ember
