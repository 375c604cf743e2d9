// SEEK_DATA and SEEK_HOLE as an actor over the range walker (kernel: fs/iomap/seek.c).
//
// The walk covers [offset, end of file) with kIomapReport (nothing is allocated); the actor
// stops at the first mapping of the kind looked for. Written data (kMapped) is data; holes
// and unwritten extents are holes, and so is the implicit hole at end of file.
// REQUIRES: the caller orders this against size changes of ino (Volume holds the file's
// range lock); thread-safe otherwise, as IomapOps is.
#pragma once

#include <cstdint>

#include "iomap/iomap.h"

namespace stablefs {

// lseek(2) SEEK_DATA (want_data) or SEEK_HOLE from offset: the first offset >= offset of that
// kind. ENXIO when offset is at or past the end of file, or (SEEK_DATA) no data follows it.
Result<uint64_t> iomap_seek(IomapOps& ops, uint64_t ino, uint64_t offset, bool want_data);

}  // namespace stablefs
