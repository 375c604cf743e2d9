// FileSpace: the space operations on a regular file's blocks that are pure metadata —
// changing the size, punching and preallocating whole blocks (SEEK_DATA/SEEK_HOLE: iomap/seek.h).
//
// Partial blocks at the edges of these operations hold data and are the caller's to zero
// through the I/O engine first (see fs/volume.h); everything here works on whole blocks.
// Large ranges are processed in bounded steps, each its own atomic operation, in an order
// that keeps every intermediate state consistent (extents past EOF are legal). Thread-safe:
// each step takes the metadata lock (InodeTable::mutex()).
#pragma once

#include <cstdint>

#include "fs/inode/inode_table.h"

namespace stablefs {

class FileSpace {
 public:
  explicit FileSpace(InodeTable& inodes) : inodes_(inodes) {}

  // Sets the size; shrinking also frees every block past the new end. REQUIRES: the tail of
  // the new last block already zeroed by the caller when it shrinks into the middle of one.
  Status set_size(uint64_t ino, uint64_t size);
  // Frees the blocks [first_block, first_block + nblocks), leaving a hole.
  Status punch(uint64_t ino, uint64_t first_block, uint64_t nblocks);
  // Allocates unwritten blocks for every hole in [first_block, +nblocks); with extend_to
  // above the size, the size grows to it (fallocate without KEEP_SIZE). ENOSPC: what was
  // allocated stays (as fallocate(2) allows).
  Status preallocate(uint64_t ino, uint64_t first_block, uint64_t nblocks, uint64_t extend_to);
  // Frees the speculative preallocation past EOF (kExtentSpeculative extents the data path
  // allocated for an appending stream). Timestamps do not change. A missing inode is not an
  // error (it was freed). REQUIRES: no I/O of ino in flight (the caller holds its whole-file
  // range lock).
  Status trim_speculative(uint64_t ino);
  // trim_speculative for every inode on the speculative list (fs/inode/speculative_list.h): at
  // mount, what a crash left; at unmount, every stream still open. An inode that fails stays
  // listed and the rest are still trimmed; returns the first failure. REQUIRES: no I/O in flight.
  Status trim_listed_speculative();

 private:
  static constexpr uint64_t kStepBlocks = 2048;
  // Frees [first_block, +nblocks) in bounded steps (punch, set_size, trim_speculative).
  Status free_blocks(uint64_t ino, uint64_t first_block, uint64_t nblocks, bool touch_times);
  InodeTable& inodes_;
};

}  // namespace stablefs
