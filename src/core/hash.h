// XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0 unless given): the model fingerprint that binds a
// session state to its model, and the state's checksums. Fast (several GB/s), not cryptographic: it
// detects corruption and mix-ups, not forgery.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ember {

uint64_t xxh64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace ember
