// copy_file_range(2) for stablefs: copies a byte range from one file to another (or to another
// place in the same file) inside the daemon, through the Volume's own read and write engines,
// so the data never crosses to the kernel and back.
//
// Semantics follow Linux's copy_file_range(2) for two files of one filesystem:
//   - flags must be 0 (EINVAL); both inodes must be regular files (EISDIR for a directory,
//     EINVAL otherwise); off + len must fit a signed 64-bit offset on both sides (EOVERFLOW);
//   - the copy stops at the source's end of file: copying from at or past it copies 0 bytes;
//   - within one file the source and destination ranges (after that shortening) must not
//     overlap (EINVAL);
//   - the destination grows to off_out + copied when that is past its end, and its mtime and
//     ctime change as for a write.
// Holes (and unwritten extents) of the source stay holes where that is cheap: past the
// destination's end they are not written at all, inside it the destination range is punched.
// The copy is not atomic (neither is Linux's): a failure part way returns the bytes copied so
// far, or the error if none were. The caller (the kernel) has already checked the handles'
// modes (EBADF) and that both files are on this filesystem (EXDEV).
// Thread-safe as Volume is; concurrent writers to the same ranges see a mix, as with write(2).
#pragma once

#include <cstdint>

#include "fs/volume.h"

namespace stablefs {

// Copies up to len bytes from ino_in at off_in to ino_out at off_out. Returns the number of
// bytes copied (0 at or past the source's end of file).
Result<uint64_t> copy_file_range(Volume& volume, uint64_t ino_in, uint64_t off_in, uint64_t ino_out, uint64_t off_out,
                                 uint64_t len, unsigned flags);

}  // namespace stablefs
