// ember/roofline.h - what bounds decode speed: the machine's read bandwidth and the bytes each decoded
// token reads.
//
//   auto bw = ember::measure_read_bandwidth(2, 1ull << 30);                 // Result<ReadBandwidth>
//   auto tr = ember::decode_traffic(*model, 512, ember::KvType::kF32);      // Result<DecodeTraffic>
//   double roofline_tok_s = bw->bytes_per_second / static_cast<double>(tr->total());
//   double fraction = measured_tok_s / roofline_tok_s;                      // ember-bench's "roof" column
//
// Decoding one token reads every weight of the model once (and the KV cache rows attention looks at),
// so a decode that runs at the speed of memory takes total() / bytes_per_second seconds per token; the
// roofline is that speed. When total() fits the last-level cache (last_level_cache_bytes()), the
// weights may stay in the cache between tokens and decode can run above a DRAM roofline.
// Thread safety: every function here may be called from any thread; measure_read_bandwidth starts its
// own threads and should not share the machine with other work while it runs (it measures what it gets).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ember/export.h"
#include "ember/model.h"
#include "ember/session.h"
#include "ember/status.h"

namespace ember {

// The bytes read from memory to decode one token, by what they are. Weights count in the form the
// runtime reads them: int8 linear weights as 1 byte plus a 4-byte scale per output row, int4 ones as half
// a byte plus a 2-byte scale per group (rows padded to 16), float ones (f32, or f16 converted at load)
// as 4 bytes; biases and norms as f32.
struct DecodeTraffic {
  uint64_t linear = 0;     // every block's four linear layers: weights, scales, biases
  uint64_t lm_head = 0;    // the LM head (n_vocab x n_embd; the token embedding when tied) and its scales
  uint64_t embedding = 0;  // one token embedding row (and its scale when int8) and one position row
  uint64_t norms = 0;      // every layer norm's gain and bias (ln_f included for pre-LN models)
  uint64_t kv_cache = 0;   // the cached key and value rows attention reads: n_past + 1 positions per
                           // layer and head, f32 rows or int8 rows with one f32 scale each
  uint64_t weights() const { return linear + lm_head + embedding + norms; }
  uint64_t total() const { return weights() + kv_cache; }
};

// What decode() reads for the token at position n_past (after n_past cached tokens) with a KV cache of
// type `kv`: the model's weights (the classifier head, which decode never runs, excluded) and the KV
// cache. kInvalidArgument when n_past >= n_ctx (no such decode) or `kv` is not a KV type.
EMBER_API Result<DecodeTraffic> decode_traffic(const Model& model, size_t n_past, KvType kv);

struct ReadBandwidth {
  double bytes_per_second = 0;       // the median pass: buffer_bytes / its wall time
  double best_bytes_per_second = 0;  // the fastest pass
  size_t n_threads = 0, buffer_bytes = 0;
  size_t passes = 0;                 // timed passes (after one untimed pass that also fills the buffer)
  double seconds = 0;                // their total wall time
};

// The machine's read bandwidth: `n_threads` threads (the caller and n_threads - 1 new ones) read disjoint
// contiguous slices of one buffer of `buffer_bytes` (each thread writes its slice first, so its pages are
// local to it), all at once, with the widest plain vector loads of the CPU that the kernels use (AVX2 on
// x86-64, NEON on AArch64), no prefetch instructions, as many passes as fit in `min_seconds` (at least
// 3). The buffer is ordinary anonymous memory with the system's default page size, like a mapped model
// file. For DRAM's bandwidth choose a buffer well past last_level_cache_bytes() (ember-bench: 4x, at
// least 256 MiB); a smaller one measures the caches. Allocates the buffer for the call and frees it.
// Errors: kInvalidArgument when n_threads is 0 or above 1024, buffer_bytes below 64 KiB per thread or
// above the machine's physical memory, or min_seconds not in (0, 60]; kInternal when the buffer cannot
// be allocated or a thread cannot be started.
EMBER_API Result<ReadBandwidth> measure_read_bandwidth(size_t n_threads, size_t buffer_bytes, double min_seconds = 0.5);

// The size of this CPU's last-level cache in bytes (the largest level cpuinfo reports: L3, else L2), 0 if
// unknown. In a virtual machine it is what the hypervisor reports, which other guests may share.
EMBER_API size_t last_level_cache_bytes();

}  // namespace ember
