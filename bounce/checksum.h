// XXH3-64 checksums for metadata blocks and data blocks.
//
// Pure functions over caller-owned memory; the caller guarantees the memory does not change
// while it is hashed. Built with xxHash inlined (XXH_INLINE_ALL), not the shared library.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stablefs {

uint64_t xxh3_64(const void* data, size_t len, uint64_t seed = 0);

// Incremental form, for a checksum over several ranges (e.g. a block with its checksum
// field treated as zero).
class Xxh3Stream {
 public:
  explicit Xxh3Stream(uint64_t seed = 0);
  ~Xxh3Stream();
  Xxh3Stream(const Xxh3Stream&) = delete;
  Xxh3Stream& operator=(const Xxh3Stream&) = delete;
  void update(const void* data, size_t len);
  uint64_t digest() const;

 private:
  void* state_;  // XXH3_state_t, opaque here to keep xxhash.h out of headers
};

}  // namespace stablefs
