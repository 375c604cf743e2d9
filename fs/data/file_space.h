// FileSpace: the space changes of a regular file that are pure metadata — its size, and the
// filesystem's side of the unmap step (IomapSpaceOps) the range actors of iomap/space.h walk
// with. Punch, preallocation and zeroing themselves are those actors (Volume runs them);
// SEEK_DATA/SEEK_HOLE is iomap/seek.h.
//
// Partial blocks at the edges of these operations hold data and are the caller's to zero
// through the I/O engine first (see fs/volume.h); everything here works on whole blocks.
// Large ranges are processed in bounded steps, each its own atomic operation, in an order
// that keeps every intermediate state consistent (extents past EOF are legal). Thread-safe:
// each step takes the metadata lock (InodeTable::mutex()). Borrows the InodeTable and the
// mapper (the IomapOps the walks use), which must outlive it.
#pragma once

#include <cstdint>
#include <vector>


#include "fs/inode/inode_table.h"
#include "iomap/iomap.h"

namespace stablefs {

class FileSpace : public IomapSpaceOps {
 public:
  FileSpace(InodeTable& inodes, IomapOps& mapper) : inodes_(inodes), mapper_(mapper) {}

  // Sets the size. Shrinking (or setting the size the file has) also frees every block past
  // the new end, preallocation included: the size commits first, with the inode on the
  // pending-truncate list (fs/inode/truncate_list.h), and the blocks go in later steps. If a
  // step fails the store shuts down, so nothing can grow the file over what is left; the next
  // mount finishes the truncate. Growing keeps what lies past EOF. REQUIRES: the tail of the
  // new last block already zeroed by the caller when it shrinks into the middle of one; the
  // file's whole-file range lock held.
  Status set_size(uint64_t ino, uint64_t size);
  // Grows the size to `size` if it is smaller, never shrinks it, in one step under the
  // metadata lock (fallocate without KEEP_SIZE, copy_file_range's trailing hole): a write
  // that grew the file meanwhile is never cut back. ctime (and with change_mtime mtime)
  // change when it grows.
  Status extend_size(uint64_t ino, uint64_t size, bool change_mtime);
  // IomapSpaceOps: one step of at most kStepBlocks.
  Result<uint64_t> unmap(uint64_t ino, uint64_t pos, uint64_t len, bool change_times) override;
  // Frees the speculative preallocation past EOF (kExtentSpeculative extents the data path
  // allocated for an appending stream). Timestamps do not change. A missing inode is not an
  // error (it was freed). Returns whether the file was on the speculative list (its block
  // count may have changed). REQUIRES: no I/O of ino in flight (the caller holds its
  // whole-file range lock).
  Result<bool> trim_speculative(uint64_t ino);
  // trim_speculative for every inode on the speculative list (fs/inode/speculative_list.h): at
  // mount, what a crash left; at unmount, every stream still open. An inode that fails stays
  // listed and the rest are still trimmed; returns the first failure. REQUIRES: no I/O in flight.
  Status trim_listed_speculative();
  // The inodes on the speculative list.
  Result<std::vector<uint64_t>> listed_speculative();

 private:
  static constexpr uint64_t kStepBlocks = 2048;
  InodeTable& inodes_;
  IomapOps& mapper_;
};

}  // namespace stablefs
