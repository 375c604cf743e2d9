// The range actors that change a file's space, over the range walker (kernel: fs/iomap's
// iomap_zero_range, and the block-freeing loops of XFS's fallocate): punch and truncate
// (unmap), preallocation, and zeroing a byte range without writing where it already reads
// as zeros.
//
// Each actor advances by what it processed; a failure part way leaves what earlier steps did
// (every step is its own atomic operation, in an order that keeps the file consistent).
// REQUIRES: the caller holds ino's range lock over the range (Volume holds the whole-file
// lock), so no I/O of the range is in flight; thread-safe otherwise, as IomapOps is.
#pragma once

#include <cstdint>
#include <functional>

#include "iomap/iomap.h"

namespace stablefs {

// Which backed mappings an unmap walk frees.
enum class UnmapWhat : uint8_t {
  kAll,          // every extent, written or unwritten (punch, truncate)
  kSpeculative,  // only speculative preallocation (kIomapSpeculative), e.g. past EOF at close
};

// Frees what backs [pos, pos+len) of ino, leaving a hole, in IomapSpaceOps::unmap steps; holes
// are skipped. change_times as in IomapSpaceOps::unmap. pos and len block aligned.
Status iomap_unmap_range(IomapOps& ops, IomapSpaceOps& space, uint64_t ino, uint64_t pos, uint64_t len,
                         UnmapWhat what, bool change_times);

// Allocates unwritten space for every hole in [pos, pos+len) (kIomapWrite | kIomapPrealloc);
// what is already allocated stays as it is. ENOSPC part way keeps what was allocated (as
// fallocate(2) allows). The size does not change. pos and len block aligned.
Status iomap_preallocate(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len);

// Makes the bytes [pos, pos+len) read as zeros: holes and unwritten extents already do; over
// written data write_zeros(at, n) is called (it writes through the I/O engine, e.g.
// DirectIo::write_sync_locked) for the part of the range in that mapping. Any byte alignment.
using WriteZeros = std::function<Status(uint64_t at, uint64_t n)>;
Status iomap_zero_range(IomapOps& ops, uint64_t ino, uint64_t pos, uint64_t len, const WriteZeros& write_zeros);

}  // namespace stablefs
