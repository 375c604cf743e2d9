#include "fs/format/format.h"

#include <cstdio>
#include <cstring>

#include "bounce/checksum.h"
#include "fs/format/endian.h"

namespace stablefs {
namespace {

// Superblock body layout (offsets from the start of the block).
constexpr size_t kSbVersion = 48, kSbBlockSize = 52, kSbCompat = 56, kSbIncompat = 64, kSbRoCompat = 72,
                 kSbTotalBlocks = 80, kSbJournalStart = 88, kSbJournalBlocks = 96, kSbBitmapStart = 104,
                 kSbBitmapBlocks = 112, kSbDataStart = 120, kSbFsRoot = 128, kSbCsumRoot = 136,
                 kSbFreeBlocks = 144, kSbInodeCount = 152, kSbNextIno = 160, kSbNextGen = 168,
                 kSbState = 176, kSbMountCount = 180, kSbMkfsTime = 184, kSbMountTime = 192,
                 kSbWriteTime = 200, kSbLabel = 208;

constexpr SuperblockField kFields[] = {
    {"magic", 0, 4},
    {"type", 4, 2},
    {"blocknr", 8, 8},
    {"uuid", 16, 16},
    {"checksum", 32, 8},
    {"seq", 40, 8},
    {"version", kSbVersion, 4},
    {"block_size", kSbBlockSize, 4},
    {"compat", kSbCompat, 8},
    {"incompat", kSbIncompat, 8},
    {"ro_compat", kSbRoCompat, 8},
    {"total_blocks", kSbTotalBlocks, 8},
    {"journal_start", kSbJournalStart, 8},
    {"journal_blocks", kSbJournalBlocks, 8},
    {"bitmap_start", kSbBitmapStart, 8},
    {"bitmap_blocks", kSbBitmapBlocks, 8},
    {"data_start", kSbDataStart, 8},
    {"fs_tree_root", kSbFsRoot, 8},
    {"csum_tree_root", kSbCsumRoot, 8},
    {"free_blocks", kSbFreeBlocks, 8},
    {"inode_count", kSbInodeCount, 8},
    {"next_ino", kSbNextIno, 8},
    {"next_generation", kSbNextGen, 8},
    {"state", kSbState, 4},
    {"mount_count", kSbMountCount, 4},
    {"mkfs_time", kSbMkfsTime, 8},
    {"mount_time", kSbMountTime, 8},
    {"write_time", kSbWriteTime, 8},
    {"label", kSbLabel, kLabelSize},
};

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

}  // namespace

const char* block_type_name(BlockType t) {
  switch (t) {
    case BlockType::kSuperblock: return "superblock";
    case BlockType::kJournalHeader: return "journal header";
    case BlockType::kJournalDescriptor: return "journal descriptor";
    case BlockType::kJournalCommit: return "journal commit";
    case BlockType::kBitmap: return "bitmap";
    case BlockType::kBtreeNode: return "B+tree node";
  }
  return "unknown";
}

std::string uuid_to_string(const Uuid& u) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  return buf;
}

uint64_t block_checksum(std::span<const uint8_t> block) {
  static constexpr uint8_t kZero[8] = {};
  Xxh3Stream h;
  h.update(block.data(), kHeaderChecksumOffset);
  h.update(kZero, sizeof kZero);
  h.update(block.data() + kHeaderChecksumOffset + 8, block.size() - kHeaderChecksumOffset - 8);
  return h.digest();
}

void stamp_block(std::span<uint8_t> block, BlockType type, uint64_t blocknr, const Uuid& uuid, uint64_t seq) {
  uint8_t* p = block.data();
  put32(p + 0, kBlockMagic);
  put16(p + 4, static_cast<uint16_t>(type));
  put16(p + 6, 0);
  put64(p + 8, blocknr);
  std::memcpy(p + 16, uuid.data(), uuid.size());
  put64(p + 40, seq);
  put64(p + kHeaderChecksumOffset, block_checksum(block));
}

BlockType header_type(std::span<const uint8_t> block) { return static_cast<BlockType>(get16(block.data() + 4)); }
uint64_t header_seq(std::span<const uint8_t> block) { return get64(block.data() + 40); }

Status verify_block(std::span<const uint8_t> block, BlockType type, uint64_t blocknr, const Uuid& uuid) {
  const uint8_t* p = block.data();
  std::string where = "block " + std::to_string(blocknr) + " (" + block_type_name(type) + ")";
  if (get32(p) != kBlockMagic) return Status::error(EUCLEAN, where + ": bad magic " + hex(get32(p)));
  if (get64(p + kHeaderChecksumOffset) != block_checksum(block))
    return Status::error(EUCLEAN, where + ": checksum mismatch");
  if (get64(p + 8) != blocknr)
    return Status::error(EUCLEAN, where + ": misdirected write: header says block " + std::to_string(get64(p + 8)));
  if (std::memcmp(p + 16, uuid.data(), uuid.size()) != 0)
    return Status::error(EUCLEAN, where + ": belongs to another filesystem (uuid mismatch)");
  if (get16(p + 4) != static_cast<uint16_t>(type))
    return Status::error(EUCLEAN, where + ": wrong block type " + std::to_string(get16(p + 4)));
  return {};
}

void Superblock::encode(std::span<uint8_t> block) const {
  uint8_t* p = block.data();
  put32(p + kSbVersion, version);
  put32(p + kSbBlockSize, block_size);
  put64(p + kSbCompat, compat);
  put64(p + kSbIncompat, incompat);
  put64(p + kSbRoCompat, ro_compat);
  put64(p + kSbTotalBlocks, total_blocks);
  put64(p + kSbJournalStart, journal_start);
  put64(p + kSbJournalBlocks, journal_blocks);
  put64(p + kSbBitmapStart, bitmap_start);
  put64(p + kSbBitmapBlocks, bitmap_blocks);
  put64(p + kSbDataStart, data_start);
  put64(p + kSbFsRoot, fs_tree_root);
  put64(p + kSbCsumRoot, csum_tree_root);
  put64(p + kSbFreeBlocks, free_blocks);
  put64(p + kSbInodeCount, inode_count);
  put64(p + kSbNextIno, next_ino);
  put64(p + kSbNextGen, next_generation);
  put32(p + kSbState, state);
  put32(p + kSbMountCount, mount_count);
  put64(p + kSbMkfsTime, mkfs_time_ns);
  put64(p + kSbMountTime, mount_time_ns);
  put64(p + kSbWriteTime, write_time_ns);
  std::memset(p + kSbLabel, 0, kLabelSize);
  std::memcpy(p + kSbLabel, label.data(), std::min(label.size(), kLabelSize - 1));
}

bool Superblock::peek(std::span<const uint8_t> block, uint32_t* block_size, Uuid* uuid) {
  if (block.size() < kSbLabel + kLabelSize) return false;
  if (get32(block.data()) != kBlockMagic || get16(block.data() + 4) != uint16_t(BlockType::kSuperblock)) return false;
  *block_size = get32(block.data() + kSbBlockSize);
  std::memcpy(uuid->data(), block.data() + 16, uuid->size());
  return true;
}

Result<Superblock> Superblock::decode(std::span<const uint8_t> block, uint64_t device_bytes) {
  const uint8_t* p = block.data();
  Superblock sb;
  auto bad = [](const std::string& field, const std::string& why) {
    return Status::error(EUCLEAN, "superblock field " + field + " is invalid: " + why);
  };
  sb.version = get32(p + kSbVersion);
  if (sb.version != kFormatVersion) return bad("version", "unsupported format version " + std::to_string(sb.version));
  sb.block_size = get32(p + kSbBlockSize);
  if (!is_pow2(sb.block_size) || sb.block_size < kMinBlockSize || sb.block_size > kMaxBlockSize)
    return bad("block_size", std::to_string(sb.block_size) + " is not a power of two in 4096..65536");
  if (sb.block_size != block.size()) return bad("block_size", "does not match the block it was read from");
  sb.compat = get64(p + kSbCompat);
  sb.incompat = get64(p + kSbIncompat);
  sb.ro_compat = get64(p + kSbRoCompat);
  if (sb.incompat & ~kKnownIncompat)
    return Status::error(EOPNOTSUPP, "filesystem uses unsupported incompatible features " + hex(sb.incompat & ~kKnownIncompat));
  std::memcpy(sb.uuid.data(), p + 16, sb.uuid.size());
  sb.total_blocks = get64(p + kSbTotalBlocks);
  if (sb.total_blocks < 2 * kMinJournalBlocks) return bad("total_blocks", "filesystem too small (" + std::to_string(sb.total_blocks) + " blocks)");
  if (sb.total_blocks > device_bytes / sb.block_size)
    return bad("total_blocks", std::to_string(sb.total_blocks) + " blocks do not fit the device (" +
                                   std::to_string(device_bytes / sb.block_size) + " blocks)");
  sb.journal_start = get64(p + kSbJournalStart);
  sb.journal_blocks = get64(p + kSbJournalBlocks);
  sb.bitmap_start = get64(p + kSbBitmapStart);
  sb.bitmap_blocks = get64(p + kSbBitmapBlocks);
  sb.data_start = get64(p + kSbDataStart);
  if (sb.journal_start != 1) return bad("journal_start", "must be 1");
  if (sb.journal_blocks < kMinJournalBlocks || sb.journal_blocks > sb.total_blocks / 2)
    return bad("journal_blocks", std::to_string(sb.journal_blocks) + " is out of range");
  if (sb.bitmap_start != sb.journal_start + sb.journal_blocks)
    return bad("bitmap_start", "does not follow the journal");
  uint64_t bits = bits_per_bitmap_block(sb.block_size);
  if (sb.bitmap_blocks != (sb.total_blocks + bits - 1) / bits)
    return bad("bitmap_blocks", "does not cover total_blocks");
  if (sb.data_start != sb.bitmap_start + sb.bitmap_blocks) return bad("data_start", "does not follow the bitmaps");
  if (sb.data_start + 2 > sb.total_blocks) return bad("data_start", "leaves no room for data");
  sb.fs_tree_root = get64(p + kSbFsRoot);
  sb.csum_tree_root = get64(p + kSbCsumRoot);
  auto in_data = [&](uint64_t b) { return b >= sb.data_start && b < sb.total_blocks - 1; };
  if (!in_data(sb.fs_tree_root)) return bad("fs_tree_root", "block " + std::to_string(sb.fs_tree_root) + " is outside the data area");
  if (!in_data(sb.csum_tree_root)) return bad("csum_tree_root", "block " + std::to_string(sb.csum_tree_root) + " is outside the data area");
  sb.free_blocks = get64(p + kSbFreeBlocks);
  if (sb.free_blocks > sb.total_blocks - sb.data_start) return bad("free_blocks", "exceeds the data area");
  sb.inode_count = get64(p + kSbInodeCount);
  sb.next_ino = get64(p + kSbNextIno);
  if (sb.next_ino <= kRootIno || sb.next_ino >= (1ull << 62)) return bad("next_ino", "out of range");
  if (sb.inode_count == 0 || sb.inode_count >= sb.next_ino) return bad("inode_count", "out of range");
  sb.next_generation = get64(p + kSbNextGen);
  sb.state = get32(p + kSbState);
  if (sb.state != kStateClean && sb.state != kStateDirty) return bad("state", "unknown state " + std::to_string(sb.state));
  sb.mount_count = get32(p + kSbMountCount);
  sb.mkfs_time_ns = get64(p + kSbMkfsTime);
  sb.mount_time_ns = get64(p + kSbMountTime);
  sb.write_time_ns = get64(p + kSbWriteTime);
  const char* label = reinterpret_cast<const char*>(p + kSbLabel);
  size_t len = strnlen(label, kLabelSize);
  if (len == kLabelSize) return bad("label", "not NUL-terminated");
  sb.label.assign(label, len);
  return sb;
}

std::span<const SuperblockField> superblock_fields() { return kFields; }

}  // namespace stablefs
