// MetadataSpace: what a metadata structure (B+tree, allocator bitmaps) needs from the
// filesystem: read a block, change a block inside the running transaction, and get or give
// back whole blocks. The filesystem implements it over the buffer cache and the journal;
// tests implement it in memory.
//
// Protocol: call modify(buf) BEFORE changing a buffer's bytes; the change then belongs to
// the running transaction and is logged at its commit (headers and checksums are stamped
// then, so callers never compute them). Buffers returned by allocate() are zeroed and
// already in the transaction. REQUIRES: the metadata lock, for every call.
#pragma once

#include <cstdint>

#include "bounce/status.h"
#include "fs/meta/buffer_cache.h"

namespace stablefs {

class MetadataSpace {
 public:
  virtual ~MetadataSpace() = default;
  virtual uint32_t block_size() const = 0;
  virtual Result<BufferRef> read(uint64_t blocknr, BlockType type) = 0;
  virtual void modify(const BufferRef& buf) = 0;
  // A new metadata block. goal (0: none) is where the caller would like it; the space may
  // place it by its own policy instead (MetadataStore: at the top of the free space). ENOSPC
  // when none is left.
  virtual Result<BufferRef> allocate(BlockType type, uint64_t goal) = 0;
  // A zeroed buffer for a block at a fixed place in the layout (bitmaps at mkfs), already
  // in the transaction. Nothing is read.
  virtual BufferRef create_fixed(uint64_t blocknr, BlockType type) = 0;
  // Returns a metadata block. It is not reused until no journal transaction still names it.
  virtual Status free(uint64_t blocknr) = 0;
};

}  // namespace stablefs
