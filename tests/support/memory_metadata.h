// MemoryMetadata: a MetadataSpace held in RAM for unit tests of the B+tree and allocator.
//
// Blocks are handed out from [first, first + count); freed blocks return at once. Tracks the
// live set so tests can assert that a structure neither leaks nor double-frees.
#pragma once

#include <set>
#include <stdexcept>
#include <unordered_map>

#include "fs/meta/metadata_space.h"

namespace stablefs::test {

class MemoryMetadata : public MetadataSpace {
 public:
  explicit MemoryMetadata(uint32_t block_size = 4096, uint64_t first = 100, uint64_t count = 1u << 22)
      : block_size_(block_size), next_(first), end_(first + count) {}

  uint32_t block_size() const override { return block_size_; }

  Result<BufferRef> read(uint64_t blocknr, BlockType type) override {
    auto it = blocks_.find(blocknr);
    if (it == blocks_.end())
      return Status::error(EUCLEAN, "block " + std::to_string(blocknr) + " is not allocated");
    if (it->second->type != type) return Status::error(EUCLEAN, "block " + std::to_string(blocknr) + ": wrong type");
    return it->second;
  }
  void modify(const BufferRef& buf) override {
    if (!blocks_.count(buf->blocknr)) throw std::logic_error("modify of a block that is not allocated");
    buf->in_transaction = true;
  }
  Result<BufferRef> allocate(BlockType type, uint64_t /*goal*/) override {
    if (fail_allocations_after_ == 0) return Status::error(ENOSPC, "no space left (test limit)");
    if (fail_allocations_after_ > 0) --fail_allocations_after_;
    uint64_t b;
    if (!free_.empty()) {
      b = *free_.begin();
      free_.erase(free_.begin());
    } else {
      if (next_ == end_) return Status::error(ENOSPC, "no space left");
      b = next_++;
    }
    auto buf = std::make_shared<Buffer>();
    buf->blocknr = b;
    buf->type = type;
    buf->bytes = AlignedBuffer(block_size_, 4096);
    buf->in_transaction = true;
    blocks_[b] = buf;
    return buf;
  }
  BufferRef create_fixed(uint64_t blocknr, BlockType type) override {
    auto buf = std::make_shared<Buffer>();
    buf->blocknr = blocknr;
    buf->type = type;
    buf->bytes = AlignedBuffer(block_size_, 4096);
    buf->in_transaction = true;
    blocks_[blocknr] = buf;
    return buf;
  }
  Status free(uint64_t blocknr) override {
    if (!blocks_.erase(blocknr)) throw std::logic_error("double free of block " + std::to_string(blocknr));
    free_.insert(blocknr);
    return {};
  }

  size_t live_blocks() const { return blocks_.size(); }
  // After n more successful allocations every allocation fails with ENOSPC (-1: never).
  void fail_allocations_after(long n) { fail_allocations_after_ = n; }

 private:
  uint32_t block_size_;
  uint64_t next_, end_;
  std::set<uint64_t> free_;
  std::unordered_map<uint64_t, BufferRef> blocks_;
  long fail_allocations_after_ = -1;
};

}  // namespace stablefs::test
