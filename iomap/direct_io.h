// DirectIo: the direct-I/O engine (kernel: fs/iomap/direct-io.c).
//
// A request is walked across the file's mappings with IomapIter; each mapped piece becomes
// IoUnits of at most max_unit_bytes, built bounced or zero-copy as the policy decided once
// for the mount. Holes and unwritten extents read as zeros without I/O. Submission is apart
// from completion: a request object counts its in-flight units and the last completion runs
// the ioend (IomapWriteCompletion) and answers the caller.
//
// Unaligned requests (offset, length or caller memory not block aligned) go through an
// aligned request-private buffer: the partial edge blocks are read first (verified against
// their checksums) and merged, then whole blocks are written (read-modify-write).
//
// Buffers: read() borrows the caller's buffer until done() has run. write() decides once, as
// it builds the I/O units, whether it copies the caller's bytes (bounce units, or the
// request-private buffer of an unaligned request) or sends them as they are (zero-copy), and
// says which in its answer (SourceUse); a zero-copy write holds what the caller's
// WriteSource::keep gave it until the device has the data (released just before done()).
// Thread-safety: any thread may start requests; overlapping requests to one file are ordered
// by range locks, disjoint ones run in parallel. done() runs on the I/O completion thread or,
// when no device I/O was needed or the queue is inline (IoQueue::Mode::kInline), on the
// calling thread before read() or write() returns. Because read() and write() may block
// (range locks, bounce pool memory, the edge reads of an unaligned write), done() must not
// start requests of this engine itself: hand them to another thread.
//
// Reads and stable pages (the lazy bounce for checksummed reads): stable pages matter for what
// is written. A read whose destination no one else can change (ReadMemory::kPrivate: a reply
// buffer the daemon leased for it, or the engine's own aligned buffer) is never bounced, even
// when the policy bounces: the device reads straight into it and it is verified there. Only
// memory that may change under the device (kShared: a library caller's) is bounced on a
// stable-pages device. Either way a block that fails its checksum is read again once into
// private memory (IoUnit) before it is called corrupt; a match then serves the data and counts
// as a transient.
//
// Data errors (a block that mismatched twice) fail the request with EIO and are recorded in the
// DataErrorLog (logged once per block, rate-limited), so the damaged file can be listed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "bounce/bounce_pool.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"
#include "bounce/mutex.h"
#include "iomap/data_error_log.h"
#include "iomap/iomap.h"
#include "iomap/range_lock.h"

namespace stablefs {

class IomapIter;

// The bytes a write sends and, optionally, the caller's way to keep them alive and unchanged
// past the call (a FUSE receive buffer). The engine calls keep() at most once, on the calling
// thread before write() returns, exactly when it decides to send bytes zero-copy, and holds
// what keep() returns until the device has the data (it lets go just before done()). Without
// keep, or if keep() gives null, a zero-copy write borrows bytes: the caller must leave them
// untouched until done() has run (write_sync and Volume::write_async do).
//
// submitted (optional): called at most once, on the calling thread before write() returns,
// when every byte of the request has been mapped and sent to the device; done() then reports
// bytes.size() unless the device or the ioend fails. It is not called when the walk stopped
// short (no space, an error), and it runs before done() can. (Write-behind answers the
// caller here.)
struct WriteSource {
  std::span<const uint8_t> bytes;
  std::function<std::shared_ptr<const void>()> keep;
  std::function<void()> submitted;
};

// How a write used the caller's memory: kCopied, free again once write() has returned;
// kBorrowed, read by the device until done() has run.
enum class SourceUse { kCopied, kBorrowed };

// Who can change a read's destination while the device fills it: kPrivate, no one (the
// caller leased it for this read and does not touch it until done()); kShared, possibly
// someone (a library caller's memory). Only kShared reads are bounced.
enum class ReadMemory { kPrivate, kShared };

struct DirectIoConfig {
  bool bounce = false;              // the mount's policy decision
  uint32_t memory_alignment = 511;  // device buffer alignment mask (queue/dma_alignment)
  size_t max_unit_bytes = 1u << 20;
};

class DirectIo {
 public:
  using Done = std::function<void(Result<size_t>)>;

  // errors: where damaged blocks found by reads are recorded (must outlive the engine).
  DirectIo(IomapOps& ops, IomapWriteCompletion& completion, IoQueue& queue, BouncePool& pool, IoStats& stats,
           FileRangeLocks& locks, DataErrorLog& errors, DirectIoConfig config);

  // File offsets stop below off_t's limit: a write reaching past it is EFBIG, a read there
  // finds end of file.
  static constexpr uint64_t kMaxFileBytes = (1ull << 63) - 1;

  // Reads up to dst.size() bytes at pos (fewer at end of file). A block failing its checksum
  // twice fails the request with EIO, naming the inode, file offset and device block; dst
  // may then hold unverified bytes of the failed unit (other units of a large request may
  // have filled theirs with verified data).
  void read(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, Done done);
  // Writes src.bytes at pos, allocating as needed; reports the bytes that reached the device
  // and were committed (a short count when space runs out part way), or an error if none did.
  SourceUse write(uint64_t ino, uint64_t pos, WriteSource src, Done done);

  Result<size_t> read_sync(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory);
  Result<size_t> write_sync(uint64_t ino, uint64_t pos, std::span<const uint8_t> src);
  // write_sync for a caller that already holds ino's range lock exclusively over the block-
  // aligned range (size changes that zero partial blocks under a whole-file lock).
  // REQUIRES: that lock held.
  Result<size_t> write_sync_locked(uint64_t ino, uint64_t pos, std::span<const uint8_t> src);
  // read_sync for a caller that already holds ino's range lock (either mode) over the block-
  // aligned range: the defragmenter, which reads and relocates a range under one exclusive
  // lock. REQUIRES: that lock held.
  Result<size_t> read_sync_locked(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory);
  // Moves the written data of [pos, pos + src.size()) to new contiguous space (kIomapRelocate):
  // src must be exactly what the range holds now, read by read_sync_locked under the same
  // lock; the ioend remaps the range, frees the old blocks and records the checksums of src,
  // leaving the file's times alone. Returns the bytes moved (fewer when a hole or unwritten
  // extent ends the written data, or space runs short). pos and src.size() block aligned.
  // src is the caller's alone and unchanged until the call returns, so it is never bounced
  // (as a kPrivate read). REQUIRES: ino's range lock held exclusively over the range.
  Result<size_t> relocate_sync_locked(uint64_t ino, uint64_t pos, std::span<const uint8_t> src);

  const DirectIoConfig& config() const { return config_; }

 private:
  struct Request;
  struct UnitSlot;
  // A request answering done, holding ino's range lock over [start, end) when take_lock
  // (exclusive for writes). Out of memory: answers done with ENOMEM itself (no lock is left
  // held) and returns null. done is moved from only on success.
  std::unique_ptr<Request> new_request(uint64_t ino, uint64_t start, uint64_t end, bool write, bool take_lock,
                                       Done& done);
  // IomapOps::file_size; std::bad_alloc becomes ENOMEM.
  Result<uint64_t> file_size(uint64_t ino);
  // Maps the aligned range of a read and submits its units as they are built, bounced when
  // bounce says so.
  void start_read(Request* req, bool bounce);
  // The walk of start_read over it, whose current mapping (when first_mapped) is the first
  // of the request: read() has begun it to learn the file's size.
  void read_walk(Request* req, bool bounce, IomapIter& it, bool first_mapped);
  void submit_unit(Request* req, UnitSlot* slot);
  SourceUse start_write(Request* req);
  // extra_op: IomapOp bits added to the write's mapping calls (kIomapRelocate).
  SourceUse write_request(uint64_t ino, uint64_t pos, WriteSource src, Done done, bool take_lock,
                          uint32_t extra_op = 0);
  void read_request(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, Done done, bool take_lock);
  void unit_done(Request* req);
  // The request-private aligned buffer of an unaligned request; false (walk_status ENOMEM)
  // when it cannot be had.
  bool allocate_temp(Request* req);
  void finish(Request* req);

  IomapOps& ops_;
  IomapWriteCompletion& completion_;
  IoQueue& queue_;
  BouncePool& pool_;
  IoStats& stats_;
  FileRangeLocks& locks_;
  DataErrorLog& errors_;
  DirectIoConfig config_;
  uint32_t block_size_;
};

}  // namespace stablefs
