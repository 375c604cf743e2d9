// The scrub actor over the range walker: checks that what backs a file range is intact — every
// written block read from the device and compared with its checksum — for the online scrub
// (fs/scrub.h). Holes and unwritten extents are not read; nothing is allocated or changed.
//
// Reads go into the caller's buffer (private memory: it is never bounced), one I/O unit of at
// most buffer.size() bytes at a time, each waited for; a unit with a mismatch is read again
// once by the unit itself (bounce/io_unit.h), so what is reported mismatched twice. A unit the
// device fails is read again block by block, so each unreadable block is named.
//
// REQUIRES: the caller holds ino's range lock over the range (shared): no write of it is in
// flight and its mapping cannot change meanwhile, so a report is never a block rewritten under
// the scrub. Not on the I/O queue's completion thread (it waits for I/O).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bounce/bounce_pool.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"
#include "bounce/io_unit.h"
#include "iomap/iomap.h"

namespace stablefs {

// One damaged or unreadable block of the range.
struct ScrubFinding {
  uint64_t file_offset = 0;  // bytes
  uint64_t length = 0;       // bytes (one block)
  uint64_t device_block = 0;
  bool unreadable = false;   // the device failed the read (then no checksums)
  uint64_t expected = 0;     // checksum mismatch: the recorded checksum
  uint64_t found = 0;        //   and that of what the device holds
  std::string device_error;  // unreadable: the device's error
};

struct ScrubRangeResult {
  uint64_t bytes_read = 0;   // written data read (and compared, with data checksums on)
  uint64_t transients = 0;   // blocks that mismatched once and matched when read again
  std::vector<ScrubFinding> findings;
};

struct ScrubIo {
  IoQueue& queue;
  BouncePool& pool;  // only for the unit's contract: the reads are not bounced
  IoStats& stats;    // the scrub's own counters
  IoUnitGeometry geometry;
};

// Scrubs [pos, pos + len) of ino (block aligned). buffer: at least one block, block aligned,
// aligned to geometry.memory_alignment. The walk's error (a failing mapping lookup) is the
// result; device and checksum failures are findings.
Result<ScrubRangeResult> iomap_scrub_range(IomapOps& ops, const ScrubIo& io, uint64_t ino, uint64_t pos, uint64_t len,
                                           std::span<uint8_t> buffer);

}  // namespace stablefs
