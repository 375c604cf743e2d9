// FileMapper: the filesystem's side of the data path — IomapOps (what backs a file range,
// allocating for writes) and IomapWriteCompletion (ioend) over the metadata store.
//
// Space policy:
//   holes      written: blocks are allocated and recorded as an unwritten extent before the
//              data is sent (kUnwritten | kIomapNew); ioend marks them written, so a crash in
//              between exposes zeros, never stale data. A write at or past EOF allocates
//              speculatively beyond its end (as many blocks again as the file holds, within
//              limits; see speculative_blocks in the .cc), marked kExtentSpeculative until
//              written, and the inode put on the on-disk speculative list (so a crash
//              cannot strand it); FileSpace::trim_speculative frees the rest when the file
//              is closed, at unmount, or at the next mount after a crash.
//   unwritten  written in place; ioend marks them written.
//   mapped     with data checksums on, never overwritten in place: new space is reserved
//              (kIomapShared) and only at ioend is it claimed, the file remapped, the old
//              blocks freed and the new checksums recorded, in one transaction. A crash
//              before ioend leaves the old data and checksums intact and leaks nothing.
//              With data checksums off, mapped blocks are overwritten in place.
//   relocate   (kIomapRelocate, the defragmenter) the written extents of a range, however
//              many, are given as one out-of-place mapping into one new contiguous extent
//              reserved whole (ENOSPC when the free space holds no such extent), placed just
//              after the block before the range where it can be; ioend remaps them as any
//              out-of-place write but leaves mtime and ctime alone.
// Every call takes the metadata lock (InodeTable::mutex()); thread-safe. The mapper borrows
// the InodeTable, which must outlive it.
#pragma once

#include <map>

#include "fs/inode/extent_map.h"
#include "fs/inode/inode_table.h"
#include "iomap/iomap.h"

namespace stablefs {

// How many of `want` blocks (at least 1) the data path may allocate now, after making space
// that only awaits reuse allocatable; ENOSPC when none. REQUIRES: the metadata lock.
Result<uint64_t> data_blocks_available(MetadataStore& store, uint64_t want);

// Told by the ioend which file ranges small writes changed (the defragmenter's candidates).
class WrittenRangeObserver {
 public:
  virtual ~WrittenRangeObserver() = default;
  // [pos, pos + len) of ino was written by a request of fewer than kSmallWriteBytes bytes
  // per mapping (relocations are not reported). Called on the ioend's thread with the
  // metadata lock held: must not block, take the metadata lock or start I/O.
  virtual void small_write(uint64_t ino, uint64_t pos, uint64_t len) = 0;
};

// The first run of written data in a range that lies in at least a given number of pieces,
// and how it lies on the device.
struct WrittenRun {
  uint64_t start_block = 0;  // file block where it starts (the range's end when there is none)
  uint64_t blocks = 0;       // written blocks from there, up to a hole, an unwritten block or the
                             // range's end
  uint64_t fragments = 0;    // device-contiguous pieces those blocks lie in
  uint64_t file_size = 0;    // bytes
  // Free space holds the run again with room to spare (a sixteenth of the filesystem): a
  // relocation would not take the space writes need.
  bool room_to_move = false;
};

class FileMapper : public IomapOps, public IomapWriteCompletion {
 public:
  explicit FileMapper(InodeTable& inodes) : inodes_(inodes) {}

  // Writes of a mapping below this many bytes are reported to the observer.
  static constexpr uint64_t kSmallWriteBytes = 1u << 20;

  // Largest extent one begin() allocates, in blocks: keeps each ioend transaction small.
  static constexpr uint64_t kMaxMappingBlocks = 2048;

  Result<Iomap> begin(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) override;
  Status end(uint64_t ino, const Iomap& map, uint64_t pos, uint64_t len, uint64_t done, uint32_t op) override;
  Status read_checksums(uint64_t dev_addr, std::span<std::optional<uint64_t>> out) override;
  // begin() and read_checksums() of the mapping's first blocks under one lock acquisition.
  Result<Iomap> begin_read(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op, std::span<std::optional<uint64_t>> out,
                           size_t* filled) override;
  Result<uint64_t> file_size(uint64_t ino) override;
  uint32_t block_size() const override { return inodes_.block_size(); }

  Status complete_writes(uint64_t ino, std::span<const WrittenRange> ranges, uint64_t end_pos, Status status) override;

  // Blocks reserved for out-of-place writes in flight (tests: 0 when idle).
  uint64_t reserved_blocks() const;

  // The first written run in [pos, pos + len) of ino (pos block aligned) that lies in at least
  // min_fragments device-contiguous pieces (runs in fewer are passed over: one walk under one
  // lock acquisition however many short runs a sparse range holds).
  Result<WrittenRun> written_run(uint64_t ino, uint64_t pos, uint64_t len, uint64_t min_fragments);

  // Sets (or, with null, clears) the observer of small writes. Once this returns, the ioend
  // no longer calls the observer it replaced. The observer must outlive its registration.
  void set_observer(WrittenRangeObserver* observer);

 private:
  // Forgets [start, start+n) from the reservation records. REQUIRES: metadata lock.
  void take_reserved(uint64_t start, uint64_t n) REQUIRES(inodes_.mutex());
  // Hands the reservation under an out-of-place range back to the allocator. REQUIRES: metadata lock.
  void release_reservation(const WrittenRange& r) REQUIRES(inodes_.mutex());

  // begin() with the metadata lock held.
  Result<Iomap> begin_locked(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) REQUIRES(inodes_.mutex());
  // The relocation mapping of begin(kIomapRelocate) at file block fb, whose piece is piece.
  Result<Iomap> begin_relocation(uint64_t ino, ExtentMap& extents, const MappedPiece& piece, uint64_t fb,
                                 uint64_t want, Iomap map) REQUIRES(inodes_.mutex());

  InodeTable& inodes_;
  WrittenRangeObserver* observer_ GUARDED_BY(inodes_.mutex()) = nullptr;
  std::map<uint64_t, uint64_t> reserved_ GUARDED_BY(inodes_.mutex());  // device block -> blocks, reserved for in-flight writes
};

}  // namespace stablefs
