// Volume: one mounted stablefs — the device, the filesystem, and the data path under it
// (I/O queue, bounce pool, stable-pages decision, range locks, mapper and engine).
//
// This is what a mount daemon (or a test, or a benchmark) holds. Namespace operations go
// through fs(); file data through read()/write() here, which run the direct-I/O engine.
// Requests that come from the kernel's page cache (buffered opens) use the same engine with
// the same mapping walk: there is no daemon-side data cache.
// Thread-safe, except close(): it must not overlap any other call, and nothing may be called
// after it but the destructor. close() (or the destructor) waits for in-flight I/O, trims
// speculative preallocation, then unmounts cleanly.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "bounce/bounce_pool.h"
#include "bounce/file_device.h"
#include "bounce/io_queue.h"
#include "bounce/io_stats.h"
#include "bounce/mutex.h"
#include "bounce/stable_pages.h"
#include "bounce/submission.h"
#include "fs/data/file_mapper.h"
#include "fs/data/file_space.h"
#include "fs/namespace/filesystem.h"
#include "fs/write_behind.h"
#include "iomap/direct_io.h"
#include "iomap/report.h"
#include "iomap/scrub.h"

namespace stablefs {

struct VolumeOptions {
  bool read_only = false;
  BouncePolicy bounce = BouncePolicy::kAuto;
  // Who makes the data path's system calls (bounce/submission.h): auto decides by the device.
  SubmitPolicy submit = SubmitPolicy::kAuto;
  size_t bounce_pool_bytes = 64u << 20;
  unsigned queue_depth = 128;
  size_t cache_blocks = 16384;
  // Tests: sees every request of the data path's I/O queue (not owned; outlives the Volume).
  IoTap* io_tap = nullptr;
  // Tests: the device the metadata (superblocks, journal, trees, bitmaps) goes through, made
  // from the opened one — a wrapper that records, cuts or fails its I/O. Empty: the device.
  std::function<std::unique_ptr<BlockDevice>(BlockDevice& opened)> wrap_metadata_device = {};
};

// What Volume::relocate_range found and did.
struct RelocateResult {
  uint64_t fragments = 0;    // device-contiguous pieces the written run lay in
  uint64_t bytes_moved = 0;  // 0 when it lay in fewer than asked for (nothing moved)
  uint64_t next = 0;         // byte offset past the run (the range's end when it had none)
};

enum FallocateMode : unsigned {
  kFallocKeepSize = 1u << 0,
  kFallocPunchHole = 1u << 1,
  kFallocZeroRange = 1u << 2,
};

class Volume {
 public:
  // Opens path (image file or block device), replays its journal, decides the bounce policy.
  static Result<std::unique_ptr<Volume>> open(const std::string& path, VolumeOptions opts);
  ~Volume();

  Filesystem& fs() { return *fs_; }
  DirectIo& engine() { return *engine_; }

  // Reads into caller memory that may change while the device fills it (ReadMemory::kShared):
  // bounced on a device that demands stable pages.
  Result<size_t> read(uint64_t ino, uint64_t pos, std::span<uint8_t> dst) {
    return engine_->read_sync(ino, pos, dst, ReadMemory::kShared);
  }
  Result<size_t> write(uint64_t ino, uint64_t pos, std::span<const uint8_t> src) { return engine_->write_sync(ino, pos, src); }
  // Forms for a server that answers from the I/O completion (DirectIo::Done). done runs on
  // the I/O completion thread, or on the calling thread before the call returns; it must not
  // start I/O on this Volume.
  //   read_async: dst (the caller's, e.g. a reply buffer) is borrowed until done has run.
  //   memory says who may change it meanwhile: kPrivate is memory nobody but this read
  //   touches until done has run (a reply buffer leased for it: the FUSE server's), which is
  //   never bounced; kShared is anything else (bounced when the device demands stable pages).
  //   write_async: the engine decides whether it copies src or sends it zero-copy and says
  //   so (DirectIo::write). A zero-copy write whose src.keep gave something holds it until the
  //   device has the data and the call returns at once; without src.keep, or when it gave
  //   null, the call waits for the device (done has run when it returns). kCopied: src is free
  //   once the call returns.
  void read_async(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, DirectIo::Done done);
  SourceUse write_async(uint64_t ino, uint64_t pos, WriteSource src, DirectIo::Done done);
  // A buffered write (fs/write_behind.h): as write_async, but done is called as soon as
  // every byte is mapped and on its way to the device (with src.bytes.size(), on the calling
  // thread, before the call returns); the ioend follows. When the walk stops short (no space,
  // an error), done reports what write_async would have. A failure after the early answer is
  // logged and kept for fsync(ino). Before anything reports or changes ino's size, times or
  // blocks, call wait_written(ino).
  void write_behind(uint64_t ino, uint64_t pos, WriteSource src, DirectIo::Done done);
  // Returns once no write of ino answered early (write_behind) is in flight; true if one was
  // (what the caller read of ino before may be out of date).
  bool wait_written(uint64_t ino) { return behind_.wait(ino); }
  const WriteBehind& write_behind_state() const { return behind_; }
  // Truncate or extend; the bytes past a shrunken end are zeroed so a later extension reads
  // zeros. Blocks wholly past the new end are freed before that partial block is zeroed (an
  // out-of-place write), so shrinking a file on a full filesystem finds the space it needs;
  // should that write still fail (ENOSPC), the file is left ending at that block's end.
  // Size changes and fallocate hold the file's range lock exclusively over the whole file:
  // they are ordered against every read and write of it.
  Status set_size(uint64_t ino, uint64_t size);
  // fallocate(2): default, KEEP_SIZE, PUNCH_HOLE (with KEEP_SIZE), ZERO_RANGE. PUNCH_HOLE
  // and ZERO_RANGE free whole blocks before zeroing partial edge blocks (likewise for a full
  // filesystem); an error part way leaves the range partly zeroed. Preallocation that runs
  // out of space keeps what it allocated.
  Status fallocate(uint64_t ino, unsigned mode, uint64_t offset, uint64_t length);
  // Grows ino to size when it is smaller, never shrinking it (a write that grew it meanwhile
  // stays whole); mtime and ctime change when it grows. Under the whole-file range lock.
  Status extend_size(uint64_t ino, uint64_t size);
  // The extent report of [offset, offset+length) of ino (iomap/report.h), under its range
  // lock held shared: ordered against writes, size changes and fallocate of ino; fn must not
  // start I/O or space changes on ino.
  Status map_extents(uint64_t ino, uint64_t offset, uint64_t length,
                     const std::function<bool(const ReportedExtent&)>& fn);
  // Checks the written blocks of [offset, offset + length) of ino against their checksums
  // (iomap/scrub.h) for the online scrub: under ino's range lock held shared (ordered against
  // its writes, size changes and fallocate: a block rewritten meanwhile is never reported) and
  // a hold on the inode (an unlink meanwhile cannot free what is being read). offset and
  // length are rounded out to blocks. buffer: memory of the caller's own, block and
  // O_DIRECT aligned; stats: the caller's counters for this I/O (not the volume's).
  Result<ScrubRangeResult> scrub_range(uint64_t ino, uint64_t offset, uint64_t length, std::span<uint8_t> buffer,
                                       IoStats& stats);
  // The defragmenter's step: the first run of written data in [offset, offset + length) of
  // ino (up to a hole, an unwritten extent or the range's end) that lies in at least
  // min_fragments device-contiguous pieces (shorter runs are passed over) is read (verified against its checksums: a
  // damaged block fails the step with EIO, its data never moved under a new checksum) and
  // written unchanged into one new contiguous extent (DirectIo::relocate_sync_locked);
  // ENOSPC, before anything is read, when free space is short (WrittenRun::room_to_move). Under
  // ino's range lock held exclusively and a hold on the inode, like scrub_range. offset block
  // aligned; buffer: the caller's, O_DIRECT aligned, at least length bytes.
  Result<RelocateResult> relocate_range(uint64_t ino, uint64_t offset, uint64_t length, uint64_t min_fragments,
                                        std::span<uint8_t> buffer);
  // lseek(2) SEEK_DATA / SEEK_HOLE (iomap/seek.h), ordered against size changes and writes
  // of ino by its range lock (held shared over the whole file).
  Result<uint64_t> seek_data(uint64_t ino, uint64_t offset) { return seek(ino, offset, true); }
  Result<uint64_t> seek_hole(uint64_t ino, uint64_t offset) { return seek(ino, offset, false); }
  // An open file handle of ino: a hold on the inode (Filesystem::acquire_inode, so an
  // unlinked open file stays until its last close) and a count of ino's open handles.
  // std::bad_alloc leaves nothing counted or held.
  void open_file(uint64_t ino) EXCLUDES(handles_mu_);
  // Closes one handle of open_file: the last one of ino trims its speculative preallocation
  // (release()), then the hold goes (which may free an unlinked file). Never throws; returns
  // the first failure, to be logged (the handle is closed whatever it says). blocks_changed
  // (optional) is set when the trim freed space, so attributes a cache holds are stale.
  Status close_file(uint64_t ino, bool* blocks_changed = nullptr) noexcept EXCLUDES(handles_mu_);
  // The last open handle of ino was closed: frees the speculative preallocation past its
  // EOF (waits for the file's I/O in flight); true when it had some. A file that no longer
  // exists is not an error.
  Result<bool> release(uint64_t ino);
  // Everything written so far durable: journal commit and device cache flush (after the
  // writes answered early have reached the device).
  Status sync();
  // fsync(2) (datasync: fdatasync(2)) of ino: its data and the metadata needed to read it
  // back durable; commits only when ino has such a change uncommitted (Filesystem::fsync).
  // Waits for ino's writes answered early first, and reports the first of them that failed
  // since the last fsync (EIO, as a kernel filesystem reports a writeback error).
  Status fsync(uint64_t ino, bool datasync);
  Status close();
  // A remount (Filesystem::set_read_only). To read-only, speculative preallocation is freed
  // first as at an unmount (each file under its range lock; one that cannot be trimmed stays
  // listed for the next read-write mount); then operations that would write fail with EROFS.
  // Thread-safe; the caller (a remount) has made sure no file is open for writing.
  Status set_read_only(bool read_only);

  const BounceDecision& bounce_decision() const { return decision_; }
  const StablePagesInfo& device_stable_pages() const { return stable_; }
  // How the data path's I/O reaches the device: through io_uring, or made by the thread that
  // starts it (then a large request occupies that thread until the device has it).
  const SubmitDecision& submit_decision() const { return submit_; }
  IoStatsSnapshot io_stats() const { return stats_.snapshot(); }
  // Damaged data blocks found while mounted (by reads and scrubs), by file.
  DataErrorLog& data_errors() { return errors_; }
  FileMapper& mapper() { return *mapper_; }
  // Files with I/O in flight or waiting for a range lock now (stablefs stats).
  size_t range_lock_files() const { return locks_.files(); }
  // The bounce pool (stablefs stats: its size, what is in use, how often a request waited).
  const BouncePool& bounce_pool() const { return *pool_; }
  FileDevice& device() { return *device_; }

 private:
  Volume() = default;
  // Writes zeros over [offset, offset + length) through the engine (partial blocks).
  // REQUIRES: the whole-file range lock of ino held.
  Status zero_bytes(uint64_t ino, uint64_t offset, uint64_t length);
  Result<uint64_t> seek(uint64_t ino, uint64_t offset, bool want_data);
  // set_size and fallocate under the whole-file lock.
  Status set_size_locked(uint64_t ino, uint64_t size);
  Status fallocate_locked(uint64_t ino, unsigned mode, uint64_t offset, uint64_t length);

  std::unique_ptr<FileDevice> device_;
  std::unique_ptr<BlockDevice> metadata_device_;  // VolumeOptions::wrap_metadata_device's, if any
  std::unique_ptr<Filesystem> fs_;
  StablePagesInfo stable_;
  BounceDecision decision_;
  SubmitDecision submit_;
  IoStats stats_;
  DataErrorLog errors_;
  WriteBehind behind_;  // before queue_: outlives the completions that report to it
  std::unique_ptr<BouncePool> pool_;
  std::unique_ptr<IoQueue> queue_;
  FileRangeLocks locks_;
  std::unique_ptr<FileMapper> mapper_;
  std::unique_ptr<FileSpace> space_;
  std::unique_ptr<DirectIo> engine_;
  Mutex handles_mu_;
  std::unordered_map<uint64_t, uint64_t> open_handles_ GUARDED_BY(handles_mu_);  // ino -> open handles
  bool closed_ = false;
};

}  // namespace stablefs
