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
// Every call takes the metadata lock (InodeTable::mutex()); thread-safe. The mapper borrows
// the InodeTable, which must outlive it.
#pragma once

#include <map>

#include "fs/inode/inode_table.h"
#include "iomap/iomap.h"

namespace stablefs {

// How many of `want` blocks (at least 1) the data path may allocate now, after making space
// that only awaits reuse allocatable; ENOSPC when none. REQUIRES: the metadata lock.
Result<uint64_t> data_blocks_available(MetadataStore& store, uint64_t want);

class FileMapper : public IomapOps, public IomapWriteCompletion {
 public:
  explicit FileMapper(InodeTable& inodes) : inodes_(inodes) {}

  // Largest extent one begin() allocates, in blocks: keeps each ioend transaction small.
  static constexpr uint64_t kMaxMappingBlocks = 2048;

  Result<Iomap> begin(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) override;
  Status end(uint64_t ino, const Iomap& map, uint64_t pos, uint64_t len, uint64_t done, uint32_t op) override;
  Status read_checksums(uint64_t dev_addr, std::span<std::optional<uint64_t>> out) override;
  Result<uint64_t> file_size(uint64_t ino) override;
  uint32_t block_size() const override { return inodes_.block_size(); }

  Status complete_writes(uint64_t ino, std::span<const WrittenRange> ranges, uint64_t end_pos, Status status) override;

  // Blocks reserved for out-of-place writes in flight (tests: 0 when idle).
  uint64_t reserved_blocks() const;

 private:
  // Forgets [start, start+n) from the reservation records. REQUIRES: metadata lock.
  void take_reserved(uint64_t start, uint64_t n) REQUIRES(inodes_.mutex());
  // Hands the reservation under an out-of-place range back to the allocator. REQUIRES: metadata lock.
  void release_reservation(const WrittenRange& r) REQUIRES(inodes_.mutex());

  InodeTable& inodes_;
  std::map<uint64_t, uint64_t> reserved_ GUARDED_BY(inodes_.mutex());  // device block -> blocks, reserved for in-flight writes
};

}  // namespace stablefs
