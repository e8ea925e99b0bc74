// The session state format (Session::save_state / restore_state): writing it from a session's buffers
// and reading it back after verifying every byte. Internal to libember; docs/library.md describes the
// layout.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/model.h"
#include "ember/session.h"
#include "ember/status.h"

namespace ember {

constexpr uint32_t kStateVersion = 1;
constexpr size_t kStateHeaderBytes = 96;   // before the model's name
constexpr size_t kStateMaxNameBytes = 4096;

// A session's buffers as the state format sees them. KV rows: (n_layer, n_head, n_ctx, head_dim), f32
// (k, v) or int8 (k_q8, v_q8) with one scale per row (k_scale, v_scale), as Session::Impl keeps them.
struct StateView {
  const Model* model = nullptr;
  KvType kv_type = KvType::kF32;
  size_t n_vocab = 0, n_ctx = 0, n_embd = 0, n_head = 0, n_layer = 0;
  size_t n_past = 0;
  int32_t* tokens = nullptr;  // (n_ctx)
  float* logits = nullptr;    // (n_vocab) the last logits; null when the session has none
  float* hidden = nullptr;    // (n_embd) the last final hidden state
  bool has_hidden = false;
  float *k = nullptr, *v = nullptr;
  int8_t *k_q8 = nullptr, *v_q8 = nullptr;
  float *k_scale = nullptr, *v_scale = nullptr;
};

// The bytes write_state() writes for `s`.
size_t state_bytes(const StateView& s);
// Writes the state of `s` to dst (capacity bytes); *written = bytes written, or needed when too small.
Status write_state(const StateView& s, void* dst, size_t capacity, size_t* written);

// What read_state() found, after verification (the caller then marks logits and hidden as present).
struct StateRead {
  size_t n_past = 0;
  bool has_logits = false, has_hidden = false;
};
// Verifies `data` completely against `into` (its model, dimensions and KV type), then copies the tokens,
// logits (into into.logits, which must be non-null with room for n_vocab), hidden state and KV rows into
// its buffers. On any error nothing is written.
Result<StateRead> read_state(const StateView& into, const void* data, size_t size);

}  // namespace ember
