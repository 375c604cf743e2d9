// On-disk format v1 constants and the common metadata block header.
//
// docs/on-disk-format.md is the byte-by-byte reference; keep the two in step.
// All integers little-endian. Block numbers are in filesystem blocks (block_size bytes).
//
// Device layout:
//   block 0                      primary superblock
//   [journal_start, +journal_blocks)   write-ahead journal (first block is its header)
//   [bitmap_start, +bitmap_blocks)     free-space bitmaps (1 bit per block, 1 = in use)
//   [data_start, total_blocks - 1)     B+tree nodes and file data, allocated on demand
//   block total_blocks - 1        backup superblock
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "bounce/status.h"

namespace stablefs {

inline constexpr uint32_t kBlockMagic = 0x46425453;  // "STBF" in little-endian bytes
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kMinBlockSize = 4096;
inline constexpr uint32_t kMaxBlockSize = 65536;
inline constexpr uint32_t kDefaultBlockSize = 4096;
// Smallest journal: a log that holds a transaction of every namespace operation.
inline constexpr uint64_t kMinJournalBlocks = 256;

// Type field of the block header. Values are on-disk; never renumber.
enum class BlockType : uint16_t {
  kSuperblock = 1,
  kJournalHeader = 2,
  kJournalDescriptor = 3,
  kJournalCommit = 4,
  kBitmap = 5,
  kBtreeNode = 6,
};
const char* block_type_name(BlockType t);

// Common header at byte 0 of every metadata block (48 bytes):
//   0  u32 magic            kBlockMagic
//   4  u16 type             BlockType
//   6  u16 reserved         0
//   8  u64 blocknr          the block's own number (catches misdirected writes)
//   16 u8[16] uuid          filesystem uuid (catches blocks of another filesystem)
//   32 u64 checksum         XXH3-64 of the whole block with this field taken as zero
//   40 u64 seq              journal sequence of the transaction that last wrote the block
inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kHeaderChecksumOffset = 32;

using Uuid = std::array<uint8_t, 16>;
std::string uuid_to_string(const Uuid& u);

// Fills the header fields (checksum last). block.size() is the block size.
void stamp_block(std::span<uint8_t> block, BlockType type, uint64_t blocknr, const Uuid& uuid, uint64_t seq);
// Computes the checksum as stamp_block does.
uint64_t block_checksum(std::span<const uint8_t> block);
// Verifies magic, type, blocknr, uuid and checksum. The error names the block and the fault.
Status verify_block(std::span<const uint8_t> block, BlockType type, uint64_t blocknr, const Uuid& uuid);
BlockType header_type(std::span<const uint8_t> block);
uint64_t header_seq(std::span<const uint8_t> block);

// Feature bits. An unknown incompat bit refuses any use; an unknown ro_compat bit refuses
// writing; compat bits are informational.
inline constexpr uint64_t kRoCompatDataChecksums = 1ull << 0;
// Set exactly while the orphan list (fs/inode/orphan_list.h) is not empty: a binary that does not
// know the list may read the filesystem but must not write it (it would leak the orphans,
// and its fsck would free their blocks while their extents still name them).
inline constexpr uint64_t kRoCompatOrphans = 1ull << 1;
// Set exactly while the pending-truncate list (fs/inode/truncate_list.h) is not empty: a file
// may then hold written blocks past EOF that the next read-write mount frees. A binary that
// does not know the list may read (the size hides those blocks) but must not write: growing
// such a file would expose the old data.
inline constexpr uint64_t kRoCompatTruncates = 1ull << 2;
inline constexpr uint64_t kKnownCompat = 0;
// Set exactly while the speculative-preallocation list (fs/inode/speculative_list.h) is not empty:
// extents may then carry kExtentSpeculative, which a binary that does not know it rejects.
inline constexpr uint64_t kIncompatSpeculative = 1ull << 0;
// Set once an xattr value is kept in chunk items (kItemXattrChunk), and kept: a binary that
// does not know them would take such a record for a corrupt one.
inline constexpr uint64_t kIncompatXattrChunks = 1ull << 1;
// Set at mkfs: a journal transaction may span several descriptor blocks (Journal), so one
// transaction can hold thousands of blocks. A binary that reads only single-descriptor
// transactions would end the log at the first long one and lose what follows.
inline constexpr uint64_t kIncompatLongTransactions = 1ull << 2;
inline constexpr uint64_t kKnownIncompat = kIncompatSpeculative | kIncompatXattrChunks | kIncompatLongTransactions;
inline constexpr uint64_t kKnownRoCompat = kRoCompatDataChecksums | kRoCompatOrphans | kRoCompatTruncates;

inline constexpr uint32_t kStateClean = 1;
inline constexpr uint32_t kStateDirty = 2;

inline constexpr uint64_t kRootIno = 1;
inline constexpr size_t kLabelSize = 64;

// The superblock, decoded. encode()/decode() are the only code that knows its byte layout.
struct Superblock {
  uint32_t version = kFormatVersion;
  uint32_t block_size = kDefaultBlockSize;
  uint64_t compat = 0;
  uint64_t incompat = 0;
  uint64_t ro_compat = 0;
  Uuid uuid{};
  std::string label;
  uint64_t total_blocks = 0;
  uint64_t journal_start = 0;
  uint64_t journal_blocks = 0;
  uint64_t bitmap_start = 0;
  uint64_t bitmap_blocks = 0;
  uint64_t data_start = 0;
  uint64_t fs_tree_root = 0;    // B+tree of inodes, dirents, extents, xattrs, symlinks
  uint64_t csum_tree_root = 0;  // B+tree of data block checksums
  uint64_t free_blocks = 0;
  uint64_t inode_count = 0;
  uint64_t next_ino = kRootIno + 1;
  uint64_t next_generation = 1;
  uint32_t state = kStateClean;
  uint32_t mount_count = 0;
  uint64_t mkfs_time_ns = 0;
  uint64_t mount_time_ns = 0;
  uint64_t write_time_ns = 0;

  bool data_checksums() const { return ro_compat & kRoCompatDataChecksums; }
  uint64_t backup_blocknr() const { return total_blocks - 1; }

  // Writes the body into a block that stamp_block() then seals.
  void encode(std::span<uint8_t> block) const;
  // Decodes and validates every field (geometry inside the device, sizes sane, regions
  // disjoint). device_bytes is the size of the device it was read from. The header must
  // already have been verified. The error says which field is wrong.
  static Result<Superblock> decode(std::span<const uint8_t> block, uint64_t device_bytes);
  // Reads the block size and uuid from a raw superblock before the header can be verified.
  static bool peek(std::span<const uint8_t> block, uint32_t* block_size, Uuid* uuid);
};

// Bits of free-space map held per bitmap block.
inline uint64_t bits_per_bitmap_block(uint32_t block_size) { return uint64_t(block_size - kHeaderSize) * 8; }

// Superblock body offsets (bytes from block start), for tests that corrupt fields one by one.
struct SuperblockField {
  const char* name;
  size_t offset;
  size_t size;
};
std::span<const SuperblockField> superblock_fields();

}  // namespace stablefs
