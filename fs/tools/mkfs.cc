#include "fs/tools/mkfs.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

#include "bounce/aligned_buffer.h"
#include "fs/format/endian.h"
#include "fs/namespace/filesystem.h"
#include "fs/meta/metadata_store.h"
#include "fs/format/superblock_io.h"

namespace stablefs {
namespace {

constexpr uint64_t kMinTotalBlocks = 4 * kMinJournalBlocks;
constexpr uint64_t kMaxJournalBytes = 64ull << 20;

Uuid random_uuid() {
  Uuid u{};
  size_t got = 0;
  while (got < u.size()) {
    ssize_t n = getrandom(u.data() + got, u.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  u[6] = (u[6] & 0x0f) | 0x40;  // RFC 4122 version 4
  u[8] = (u[8] & 0x3f) | 0x80;
  return u;
}

}  // namespace

Result<Superblock> plan_filesystem(uint64_t device_bytes, const MkfsOptions& opts) {
  const uint32_t bs = opts.block_size;
  if (bs < kMinBlockSize || bs > kMaxBlockSize || (bs & (bs - 1)))
    return Status::error(EINVAL, "block size " + std::to_string(bs) + " is not a power of two between 4096 and 65536");
  if (opts.label.size() >= kLabelSize)
    return Status::error(EINVAL, "label longer than " + std::to_string(kLabelSize - 1) + " bytes");
  Superblock sb;
  sb.block_size = bs;
  sb.total_blocks = device_bytes / bs;
  if (sb.total_blocks < kMinTotalBlocks)
    return Status::error(ENOSPC, "device too small: " + std::to_string(device_bytes) + " bytes, need at least " +
                                     std::to_string(kMinTotalBlocks * bs) + " with " + std::to_string(bs) + "-byte blocks");
  uint64_t max_journal = std::max<uint64_t>(kMinJournalBlocks, kMaxJournalBytes / bs);
  sb.journal_blocks = opts.journal_blocks ? opts.journal_blocks : std::clamp<uint64_t>(sb.total_blocks / 128, kMinJournalBlocks, max_journal);
  if (sb.journal_blocks < kMinJournalBlocks || sb.journal_blocks > sb.total_blocks / 4)
    return Status::error(EINVAL, "journal of " + std::to_string(sb.journal_blocks) + " blocks does not fit this device");
  sb.journal_start = 1;
  sb.bitmap_start = sb.journal_start + sb.journal_blocks;
  uint64_t bits = bits_per_bitmap_block(bs);
  sb.bitmap_blocks = (sb.total_blocks + bits - 1) / bits;
  sb.data_start = sb.bitmap_start + sb.bitmap_blocks;
  sb.ro_compat = opts.data_checksums ? kRoCompatDataChecksums : 0;
  sb.incompat = kIncompatLongTransactions;
  sb.uuid = random_uuid();
  sb.label = opts.label;
  sb.state = kStateClean;
  sb.mkfs_time_ns = now_ns();
  sb.free_blocks = sb.total_blocks - sb.data_start - 1;
  sb.inode_count = 1;
  return sb;
}

Result<std::string> detect_existing_filesystem(BlockDevice& dev) {
  const size_t probe_len = static_cast<size_t>(std::min<uint64_t>(dev.size_bytes(), 128 * 1024)) & ~size_t(4095);
  if (probe_len == 0) return std::string();
  AlignedBuffer buf(probe_len);
  SFS_TRY(dev.read(0, buf.data(), probe_len).with_context(dev.name()));
  const uint8_t* p = buf.data();
  if (get32(p) == kBlockMagic && get16(p + 4) == static_cast<uint16_t>(BlockType::kSuperblock)) return std::string("stablefs");
  if (std::memcmp(p, "XFSB", 4) == 0) return std::string("xfs");
  if (probe_len >= 1082 && get16(p + 1080) == 0xEF53) return std::string("ext2/ext3/ext4");
  if (probe_len >= 65536 + 72 && std::memcmp(p + 65536 + 64, "_BHRfS_M", 8) == 0) return std::string("btrfs");
  return std::string();
}

Result<Superblock> make_filesystem(BlockDevice& dev, const MkfsOptions& opts) {
  SFS_ASSIGN(Superblock sb, plan_filesystem(dev.size_bytes(), opts));
  // Wipe the old primary and backup superblock locations first, so a half-made filesystem
  // is never mistaken for a complete one (or for what was there before).
  AlignedBuffer zero(kMaxBlockSize);
  SFS_TRY(dev.write(0, zero.data(), std::min<uint64_t>(kMaxBlockSize, dev.size_bytes())));
  uint64_t tail = std::min<uint64_t>(kMaxBlockSize, dev.size_bytes());
  SFS_TRY(dev.write((dev.size_bytes() - tail) & ~uint64_t(4095), zero.data(), tail & ~uint64_t(4095)));
  SFS_TRY(dev.flush());
  SFS_TRY(Filesystem::format(dev, sb).with_context(dev.name()));
  return read_superblock(dev, SuperblockCopy::kPrimary);
}

}  // namespace stablefs
