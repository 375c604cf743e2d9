// Items of the filesystem tree and the checksum tree: their key types and value codecs.
//
// Each decode() distrusts its input: a value of the wrong size or with lengths that do not
// add up is an EUCLEAN error naming the key, never an out-of-bounds read.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/status.h"
#include "fs/format/btree_key.h"

namespace stablefs {

// Key types in the filesystem tree (on-disk values; never renumber).
enum ItemType : uint8_t {
  kItemInode = 1,    // (ino, 1, 0)                    -> InodeRecord
  kItemDirent = 2,   // (dir, 2, name slot)            -> DirentRecord
  kItemExtent = 3,   // (ino, 3, first file block)     -> ExtentRecord
  kItemXattr = 4,    // (ino, 4, name slot)            -> XattrRecord
  kItemSymlink = 5,  // (ino, 5, chunk index)          -> raw bytes of the target
  kItemOrphan = 6,   // (kOrphanListObjectid, 6, ino)  -> OrphanRecord
  kItemSpeculative = 7,  // (kOrphanListObjectid, 7, ino) -> empty: ino may hold speculative extents
  kItemTruncate = 8,     // (kOrphanListObjectid, 8, ino) -> empty: ino's truncate has not freed everything past EOF
  kItemXattrChunk = 9,   // (ino, 9, value id << 9 | chunk index) -> raw bytes of a large xattr value
  kItemScrubState = 10,  // (kOrphanListObjectid, 10, 0) -> ScrubStateRecord: the last online scrub
};
// The orphan list (inodes whose last link is gone but which were still in use) is filed
// under the root directory's objectid: the filesystem tree keeps starting with the root
// inode, and no inode that can be freed owns these items.
inline constexpr uint64_t kOrphanListObjectid = 1;  // kRootIno
// Key type in the checksum tree: (0, 16, dev_block / kCsumGroupBlocks) -> CsumGroup.
inline constexpr uint8_t kItemCsumGroup = 16;
inline constexpr uint64_t kCsumGroupBlocks = 64;

// Name slots: directory entries and xattrs live at offset (hash55(name) + 1) << 8 | k, where
// k (0..255) separates names whose hashes collide. Slots are >= 256, so readdir cookies
// (slot + 1) never collide with the cookies of "." and "..".
uint64_t name_slot_base(std::string_view name);
inline constexpr uint64_t kSlotsPerHash = 256;

struct Timespec {
  int64_t sec = 0;
  uint32_t nsec = 0;
  auto operator<=>(const Timespec&) const = default;
};

struct InodeRecord {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;
  uint64_t blocks = 0;  // filesystem blocks allocated to data
  uint64_t rdev = 0;
  uint64_t generation = 0;
  uint64_t parent = 0;  // directories: the parent directory's inode; others 0
  uint32_t flags = 0;
  Timespec atime, mtime, ctime, btime;
  static constexpr size_t kSize = 128;
  std::vector<uint8_t> encode() const;
  static Result<InodeRecord> decode(std::span<const uint8_t> v, uint64_t ino);
  bool operator==(const InodeRecord&) const = default;
};

struct DirentRecord {
  uint64_t ino = 0;
  uint8_t dtype = 0;  // DT_* of the target
  std::string name;
  std::vector<uint8_t> encode() const;
  static Result<DirentRecord> decode(std::span<const uint8_t> v, const Key& key);
};

inline constexpr uint32_t kExtentUnwritten = 1u << 0;
// Speculative preallocation past EOF for an appending stream (always with kExtentUnwritten):
// what lies past EOF is freed when the file is next closed (or at mount after a crash; see
// fs/inode/speculative_list.h); written blocks lose both flags. Where the file has grown over it
// (truncate up, a write further out) it is an ordinary unwritten extent.
inline constexpr uint32_t kExtentSpeculative = 1u << 1;
struct ExtentRecord {
  uint64_t dev_block = 0;
  uint64_t nblocks = 0;
  uint32_t flags = 0;
  static constexpr size_t kSize = 20;
  std::vector<uint8_t> encode() const;
  static Result<ExtentRecord> decode(std::span<const uint8_t> v, const Key& key);
};

// An xattr value too large for the item that names it (Filesystem decides) lies in chunk
// items of its inode: chunk i holds bytes [i * C, (i + 1) * C) of the value, C being the
// largest item value of the block size, under a value id unique within the inode.
inline constexpr unsigned kXattrChunkIndexBits = 9;
inline constexpr uint64_t kXattrMaxChunks = uint64_t{1} << kXattrChunkIndexBits;
inline constexpr uint64_t kXattrMaxValueId = (~uint64_t{0}) >> kXattrChunkIndexBits;
inline Key xattr_chunk_key(uint64_t ino, uint64_t value_id, uint64_t index) {
  return Key{ino, kItemXattrChunk, value_id << kXattrChunkIndexBits | index};
}

// Encoded as name length u8, value length u32, name, then the value itself or, for a value
// kept in chunks (the length's top bit set), its value id u64.
struct XattrRecord {
  std::string name;
  std::vector<uint8_t> value;  // the value, when it is in the record (value_id == 0)
  uint64_t value_id = 0;       // nonzero: the value is in chunk items under this id
  uint32_t chunked_size = 0;   // and has this many bytes
  std::vector<uint8_t> encode() const;
  static Result<XattrRecord> decode(std::span<const uint8_t> v, const Key& key);
  static constexpr uint32_t kChunkedFlag = 0x80000000u;
};

// An entry of the orphan list: the inode (the key's offset) and its generation, so that an
// item outliving its inode can never name a different incarnation.
// Where the online scrub (fs/scrub.h) stands, kept so a scrub interrupted by an unmount
// resumes where it stopped: the next file and offset to check and the counts so far.
struct ScrubStateRecord {
  enum State : uint32_t { kRunning = 1, kPaused = 2, kFinished = 3, kCanceled = 4 };
  uint32_t state = kRunning;
  uint64_t next_ino = 0;
  uint64_t next_offset = 0;
  uint64_t bytes_checked = 0;
  uint64_t data_errors = 0;     // blocks that failed their checksum twice
  uint64_t unreadable = 0;      // blocks the device could not read
  uint64_t transients = 0;      // blocks that mismatched once and matched when read again
  uint64_t rate_limit = 0;      // bytes per second; 0: none
  uint64_t started_ns = 0;      // wall clock
  uint64_t ended_ns = 0;        // finished or canceled; 0 while running or paused
  uint64_t elapsed_ns = 0;      // time spent scrubbing (pauses and unmounted time excluded)
  static constexpr size_t kSize = 4 + 4 + 10 * 8;  // state, reserved, ten u64
  static Key key() { return {kOrphanListObjectid, kItemScrubState, 0}; }
  std::vector<uint8_t> encode() const;
  static Result<ScrubStateRecord> decode(std::span<const uint8_t> v, const Key& key);
};

struct OrphanRecord {
  uint64_t generation = 0;
  static constexpr size_t kSize = 8;
  std::vector<uint8_t> encode() const;
  static Result<OrphanRecord> decode(std::span<const uint8_t> v, const Key& key);
};

// Checksums of kCsumGroupBlocks consecutive device blocks; present has bit i set when
// sums[i] is valid.
struct CsumGroup {
  uint64_t present = 0;
  uint64_t sums[kCsumGroupBlocks] = {};
  static constexpr size_t kSize = 8 + 8 * kCsumGroupBlocks;
  std::vector<uint8_t> encode() const;
  static Result<CsumGroup> decode(std::span<const uint8_t> v, const Key& key);
};

}  // namespace stablefs
