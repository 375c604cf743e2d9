#include "fs/meta/buffer_cache.h"

#include <cstring>

namespace stablefs {

BufferCache::BufferCache(BlockDevice& device, uint32_t block_size, const Uuid& uuid, size_t max_clean_blocks)
    : device_(device), block_size_(block_size), uuid_(uuid), max_clean_blocks_(max_clean_blocks) {}

void BufferCache::touch(Buffer& b) {
  lru_.splice(lru_.begin(), lru_, b.lru_pos);
}

Result<BufferRef> BufferCache::read(uint64_t blocknr, BlockType type) {
  if (auto it = map_.find(blocknr); it != map_.end()) {
    Buffer& b = *it->second;
    if (b.type != type)
      return Status::error(EUCLEAN, "block " + std::to_string(blocknr) + " (" + block_type_name(type) +
                                        ") is in use as a " + block_type_name(b.type));
    touch(b);
    return it->second;
  }
  uint64_t total = device_.size_bytes() / block_size_;
  if (blocknr >= total)
    return Status::error(EUCLEAN, "block " + std::to_string(blocknr) + " (" + block_type_name(type) +
                                      ") is beyond the end of the device");
  auto buf = std::make_shared<Buffer>();
  buf->blocknr = blocknr;
  buf->type = type;
  buf->bytes = AlignedBuffer(block_size_, 4096);
  if (auto ov = overlay_.find(blocknr); ov != overlay_.end()) {
    std::memcpy(buf->data(), ov->second.data(), block_size_);
  } else {
    SFS_TRY(device_.read(blocknr * block_size_, buf->data(), block_size_));
  }
  SFS_TRY(verify_block(buf->span(), type, blocknr, uuid_));
  lru_.push_front(blocknr);
  buf->lru_pos = lru_.begin();
  map_.emplace(blocknr, buf);
  trim();
  return buf;
}

BufferRef BufferCache::create(uint64_t blocknr, BlockType type) {
  forget(blocknr);
  auto buf = std::make_shared<Buffer>();
  buf->blocknr = blocknr;
  buf->type = type;
  buf->bytes = AlignedBuffer(block_size_, 4096);
  lru_.push_front(blocknr);
  buf->lru_pos = lru_.begin();
  map_.emplace(blocknr, buf);
  return buf;
}

void BufferCache::forget(uint64_t blocknr) {
  auto it = map_.find(blocknr);
  if (it == map_.end()) return;
  it->second->in_transaction = false;
  it->second->needs_checkpoint = false;
  lru_.erase(it->second->lru_pos);
  map_.erase(it);
  overlay_.erase(blocknr);
}

void BufferCache::trim() {
  if (map_.size() <= max_clean_blocks_) return;
  // Walk from the least recently used end; pinned or referenced buffers stay.
  auto it = lru_.end();
  size_t excess = map_.size() - max_clean_blocks_;
  while (excess > 0 && it != lru_.begin()) {
    --it;
    auto m = map_.find(*it);
    const BufferRef& b = m->second;
    if (b->pinned() || b.use_count() > 1) continue;
    it = lru_.erase(it);
    map_.erase(m);
    --excess;
  }
}

}  // namespace stablefs
