// BufferCache: metadata blocks of one filesystem, read and verified once, kept in memory.
//
// A Buffer holds one block's bytes. Buffers that belong to the running transaction or
// wait for checkpoint are pinned (never evicted); clean buffers are evicted in LRU order
// once the cache holds more than its clean-block budget. The cache does not write: the
// journal decides when a buffer's bytes go to the log and to their home location.
//
// Not thread-safe: REQUIRES the filesystem's metadata lock for every call.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/block_device.h"
#include "fs/format/format.h"

namespace stablefs {

struct Buffer {
  uint64_t blocknr = 0;
  BlockType type = BlockType::kBtreeNode;
  AlignedBuffer bytes;
  bool in_transaction = false;    // changed in the running transaction
  bool needs_checkpoint = false;  // committed to the journal, home copy stale
  // Set by the B-tree once it has checked this block's node layout item by item; its own
  // changes keep the layout valid, so later opens check only the header. A block read from
  // the device again comes in a new Buffer, unchecked.
  bool node_checked = false;
  std::list<uint64_t>::iterator lru_pos;

  uint8_t* data() { return bytes.data(); }
  const uint8_t* data() const { return bytes.data(); }
  std::span<uint8_t> span() { return bytes.span(); }
  std::span<const uint8_t> span() const { return bytes.span(); }
  bool pinned() const { return in_transaction || needs_checkpoint; }
};
using BufferRef = std::shared_ptr<Buffer>;

class BufferCache {
 public:
  BufferCache(BlockDevice& device, uint32_t block_size, const Uuid& uuid, size_t max_clean_blocks);

  // Returns the block, reading and verifying it (header, checksum, type, own number) on a
  // miss. Blocks in an overlay (journal replay of a read-only open) are served from there.
  Result<BufferRef> read(uint64_t blocknr, BlockType type);
  // Returns a zeroed buffer for a block that is being newly initialised; nothing is read.
  // Any cached copy of the block is replaced.
  BufferRef create(uint64_t blocknr, BlockType type);
  // Drops a block that was freed; its pending state is discarded. REQUIRES: no one holds it
  // for writing.
  void forget(uint64_t blocknr);
  // Read-only opens: committed journal images that replay would have written home.
  void set_overlay(std::unordered_map<uint64_t, std::vector<uint8_t>> overlay) { overlay_ = std::move(overlay); }
  // Evicts clean, unreferenced buffers beyond the budget.
  void trim();

  uint32_t block_size() const { return block_size_; }
  const Uuid& uuid() const { return uuid_; }
  BlockDevice& device() { return device_; }

 private:
  void touch(Buffer& b);
  BlockDevice& device_;
  uint32_t block_size_;
  Uuid uuid_;
  size_t max_clean_blocks_;
  std::unordered_map<uint64_t, BufferRef> map_;
  std::list<uint64_t> lru_;  // front = most recent
  std::unordered_map<uint64_t, std::vector<uint8_t>> overlay_;
};

}  // namespace stablefs
