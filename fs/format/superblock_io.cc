#include "fs/format/superblock_io.h"

#include "bounce/aligned_buffer.h"

namespace stablefs {

Result<Superblock> read_superblock(BlockDevice& dev, SuperblockCopy which, const Superblock* primary) {
  const std::string& name = dev.name();
  const char* what = which == SuperblockCopy::kPrimary ? "primary superblock" : "backup superblock";
  if (dev.size_bytes() < 64ull * kMinBlockSize)
    return Status::error(EINVAL, name + ": too small to hold a stablefs filesystem");
  // The block size is learnt from the copy itself, then the whole block is verified.
  uint32_t block_size = 0;
  Uuid uuid{};
  uint64_t offset = 0;
  AlignedBuffer probe(kMinBlockSize);
  if (which == SuperblockCopy::kPrimary) {
    SFS_TRY(dev.read(0, probe.data(), kMinBlockSize).with_context(name));
    if (!Superblock::peek(probe.span(), &block_size, &uuid))
      return Status::error(EUCLEAN, name + ": no stablefs filesystem found (block 0: no stablefs superblock magic)");
  } else if (primary) {
    block_size = primary->block_size;
    uuid = primary->uuid;
    offset = primary->backup_blocknr() * block_size;
  } else {
    // The backup lives in the last block; try every legal block size.
    bool found = false;
    for (uint32_t bs = kMinBlockSize; bs <= kMaxBlockSize && !found; bs *= 2) {
      uint64_t blocks = dev.size_bytes() / bs;
      if (blocks < 64) break;
      offset = (blocks - 1) * bs;
      SFS_TRY(dev.read(offset, probe.data(), kMinBlockSize).with_context(name));
      found = Superblock::peek(probe.span(), &block_size, &uuid) && block_size == bs;
    }
    if (!found) return Status::error(EUCLEAN, name + ": no backup superblock found in the last block");
  }
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize || (block_size & (block_size - 1))) {
    // An impossible size means the block is damaged: its checksum cannot hold at any size.
    return Status::error(EUCLEAN, name + ": " + what + ": block " + std::to_string(offset / kMinBlockSize) +
                                      " (superblock): checksum mismatch (block_size field reads " +
                                      std::to_string(block_size) + ")");
  }
  AlignedBuffer blk(block_size);
  SFS_TRY(dev.read(offset, blk.data(), block_size).with_context(name));
  uint64_t blocknr = offset / block_size;
  Status st = verify_block(blk.span(), BlockType::kSuperblock, blocknr, uuid);
  if (!st.ok()) return Status::error(st.code(), name + ": " + what + ": " + st.message());
  auto sb = Superblock::decode(blk.span(), dev.size_bytes());
  if (!sb.ok()) return sb.status().with_context(name + ": " + what);
  if (which == SuperblockCopy::kBackup && blocknr != sb->backup_blocknr())
    return Status::error(EUCLEAN, name + ": backup superblock is not in the filesystem's last block");
  return sb;
}

Status write_superblock(BlockDevice& dev, const Superblock& sb, uint64_t blocknr, uint64_t seq) {
  AlignedBuffer blk(sb.block_size);
  sb.encode(blk.span());
  stamp_block(blk.span(), BlockType::kSuperblock, blocknr, sb.uuid, seq);
  return dev.write(blocknr * sb.block_size, blk.data(), sb.block_size);
}

}  // namespace stablefs
