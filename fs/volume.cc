#include "fs/volume.h"

#include <cstdio>
#include <cstring>
#include <future>
#include <new>
#include <vector>

#include "bounce/aligned_buffer.h"
#include "bounce/submit_plug.h"
#include "iomap/seek.h"
#include "iomap/space.h"

namespace stablefs {

Result<std::unique_ptr<Volume>> Volume::open(const std::string& path, VolumeOptions opts) {
  std::unique_ptr<Volume> v(new Volume());
  SFS_ASSIGN(v->device_, FileDevice::open(path, {.read_only = opts.read_only, .exclusive = true}));
  SFS_ASSIGN(v->stable_, detect_stable_pages(path));
  v->decision_ = decide_bounce(opts.bounce, v->stable_);
  SFS_ASSIGN(const SubmissionInfo submission, detect_submission(path));
  v->submit_ = decide_submission(opts.submit, submission);
  if (opts.wrap_metadata_device) v->metadata_device_ = opts.wrap_metadata_device(*v->device_);
  BlockDevice& metadata = v->metadata_device_ ? *v->metadata_device_ : *v->device_;
  SFS_ASSIGN(v->fs_, Filesystem::open(metadata, {.read_only = opts.read_only, .cache_blocks = opts.cache_blocks}));
  const uint32_t bs = v->fs_->statfs().block_size;
  v->pool_ = std::make_unique<BouncePool>(opts.bounce_pool_bytes, bs);
  iovec arena = v->pool_->arena();
  auto queue = IoQueue::create(v->device_->fd(), opts.queue_depth, &arena, opts.io_tap, v->submit_.mode);
  if (!queue.ok()) return queue.status().with_context(path + ": io_uring");
  v->queue_ = std::move(queue).value();
  v->mapper_ = std::make_unique<FileMapper>(v->fs_->inodes());
  v->space_ = std::make_unique<FileSpace>(v->fs_->inodes(), *v->mapper_);
  DirectIoConfig cfg;
  cfg.bounce = v->decision_.bounce;
  cfg.memory_alignment = v->device_->memory_alignment();
  v->engine_ = std::make_unique<DirectIo>(*v->mapper_, *v->mapper_, *v->queue_, *v->pool_, v->stats_, v->locks_,
                                         v->errors_, cfg);
  if (!opts.read_only) {
    // Speculative preallocation listed on disk was left by a crash (a clean unmount trims it).
    // A failure leaves that inode listed for a later mount: worth a line, not a refusal.
    if (Status s = v->space_->trim_listed_speculative(); !s.ok())
      std::fprintf(stderr, "stablefs: %s: %s\n", path.c_str(), s.message().c_str());
  }
  return v;
}

Volume::~Volume() {
  if (!closed_) (void)close();
}

Status Volume::zero_bytes(uint64_t ino, uint64_t offset, uint64_t length) {
  return iomap_zero_range(*mapper_, ino, offset, length, [&](uint64_t at, uint64_t n) -> Status {
    std::vector<uint8_t> zeros(static_cast<size_t>(n), 0);
    SFS_ASSIGN(size_t written, engine_->write_sync_locked(ino, at, zeros));
    if (written != n) return Status::error(ENOSPC, "could not zero a partial block");
    return {};
  });
}

Status Volume::set_size(uint64_t ino, uint64_t size) {
  if (size > DirectIo::kMaxFileBytes) return Status::error(EFBIG, "size " + std::to_string(size) + " is too large");
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, true);
  return set_size_locked(ino, size);
}

Status Volume::set_size_locked(uint64_t ino, uint64_t size) {
  SFS_ASSIGN(Inode inode, fs_->getattr(ino));
  const uint64_t bs = fs_->statfs().block_size;
  if (size < inode.rec.size && size % bs != 0) {
    const uint64_t block_end = (size / bs + 1) * bs;
    // Free what lies wholly past the new last block first: zeroing the rest of that block is
    // an out-of-place write, and on a full filesystem the space freed here is what it needs.
    if (inode.rec.size > block_end) SFS_TRY(space_->set_size(ino, block_end));
    // Zero the rest of the new last block (up to the old end) before it becomes past-EOF.
    SFS_TRY(zero_bytes(ino, size, std::min(block_end, inode.rec.size) - size));
  }
  return space_->set_size(ino, size);
}

Status Volume::fallocate(uint64_t ino, unsigned mode, uint64_t offset, uint64_t length) {
  if (length == 0) return Status::error(EINVAL, "fallocate of zero bytes");
  if (offset > DirectIo::kMaxFileBytes || length > DirectIo::kMaxFileBytes - offset)
    return Status::error(EFBIG, "fallocate range reaches past the largest file offset");
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, true);
  return fallocate_locked(ino, mode, offset, length);
}

Status Volume::fallocate_locked(uint64_t ino, unsigned mode, uint64_t offset, uint64_t length) {
  const uint64_t bs = fs_->statfs().block_size;
  SFS_ASSIGN(Inode inode, fs_->getattr(ino));
  const uint64_t end = offset + length;
  const uint64_t first_full = (offset + bs - 1) / bs, end_full = end / bs;
  if (mode & (kFallocPunchHole | kFallocZeroRange)) {
    if ((mode & kFallocPunchHole) && !(mode & kFallocKeepSize))
      return Status::error(EOPNOTSUPP, "PUNCH_HOLE requires KEEP_SIZE");
    // Partial blocks at either edge are zeroed through the engine, whole blocks are punched.
    const uint64_t size = inode.rec.size;
    auto zero_edge = [&](uint64_t a, uint64_t b) -> Status {
      b = std::min(b, std::max(size, (mode & kFallocKeepSize) ? size : end));
      if (a >= b) return {};
      return zero_bytes(ino, a, b - a);
    };
    if (first_full > end_full) {
      SFS_TRY(zero_edge(offset, end));
    } else {
      // Whole blocks first: the edge writes go out of place, and on a full filesystem the
      // space the punch frees is what they need.
      if (end_full > first_full)
        SFS_TRY(iomap_unmap_range(*mapper_, *space_, ino, first_full * bs, (end_full - first_full) * bs,
                                  UnmapWhat::kAll, true));
      SFS_TRY(zero_edge(offset, first_full * bs));
      SFS_TRY(zero_edge(end_full * bs, end));
    }
    if (mode & kFallocZeroRange) {
      if (end_full > first_full) SFS_TRY(iomap_preallocate(*mapper_, ino, first_full * bs, (end_full - first_full) * bs));
      if (!(mode & kFallocKeepSize)) SFS_TRY(space_->extend_size(ino, end, false));
    }
    return {};
  }
  const uint64_t first = offset / bs * bs, last = (end + bs - 1) / bs * bs;
  SFS_TRY(iomap_preallocate(*mapper_, ino, first, last - first));
  if (!(mode & kFallocKeepSize)) SFS_TRY(space_->extend_size(ino, end, false));
  return {};
}

Status Volume::extend_size(uint64_t ino, uint64_t size) {
  if (size > DirectIo::kMaxFileBytes) return Status::error(EFBIG, "size " + std::to_string(size) + " is too large");
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, true);
  return space_->extend_size(ino, size, true);
}

Status Volume::map_extents(uint64_t ino, uint64_t offset, uint64_t length,
                           const std::function<bool(const ReportedExtent&)>& fn) {
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, false);
  return iomap_report(*mapper_, ino, offset, length, fn);
}

Result<ScrubRangeResult> Volume::scrub_range(uint64_t ino, uint64_t offset, uint64_t length, std::span<uint8_t> buffer,
                                             IoStats& stats) {
  const uint64_t bs = fs_->statfs().block_size;
  const uint64_t first = offset / bs * bs;
  const uint64_t last = std::min(kIomapEndOfAnyFile, (offset + length + bs - 1) / bs * bs);
  if (last <= first) return ScrubRangeResult{};
  fs_->acquire_inode(ino);
  Result<ScrubRangeResult> r = [&]() -> Result<ScrubRangeResult> {
    const FileRangeLocks::Held range = locks_.lock(ino, first, last, false);
    const ScrubIo io{*queue_, *pool_, stats, {static_cast<uint32_t>(bs), device_->memory_alignment()}};
    return iomap_scrub_range(*mapper_, io, ino, first, last - first, buffer);
  }();
  if (Status released = fs_->release_inode(ino); !released.ok() && r.ok()) return released;
  return r;
}

Result<RelocateResult> Volume::relocate_range(uint64_t ino, uint64_t offset, uint64_t length, uint64_t min_fragments,
                                              std::span<uint8_t> buffer) {
  const uint64_t bs = fs_->statfs().block_size;
  if (offset % bs != 0 || buffer.size() < length)
    return Status::error(EINVAL, "relocation of an unaligned range or into a short buffer");
  const uint64_t last = std::min(kIomapEndOfAnyFile, (offset + length + bs - 1) / bs * bs);
  if (last <= offset) return RelocateResult{0, 0, offset + length};
  if (fs_->health().read_only) return Status::error(EROFS, "the filesystem is read-only");
  fs_->acquire_inode(ino);
  Result<RelocateResult> r = [&]() -> Result<RelocateResult> {
    const FileRangeLocks::Held range = locks_.lock(ino, offset, last, true);
    SFS_ASSIGN(const WrittenRun run, mapper_->written_run(ino, offset, last - offset, min_fragments));
    const uint64_t start = run.start_block * bs;
    RelocateResult result{run.fragments, 0, start + run.blocks * bs};
    if (run.blocks == 0) result.next = last;
    // Only blocks that hold bytes of the file: the read below sees nothing past its end.
    const uint64_t below_eof = run.file_size > start ? (run.file_size - start + bs - 1) / bs : 0;
    const uint64_t blocks = std::min(run.blocks, below_eof);
    if (blocks == 0) return result;
    if (!run.room_to_move)
      return Status::error(ENOSPC, device_->name() + ": too little free space to move file data together");
    const size_t bytes = static_cast<size_t>(blocks * bs);
    std::span<uint8_t> data = buffer.first(bytes);
    SFS_ASSIGN(const size_t got, engine_->read_sync_locked(ino, start, data, ReadMemory::kPrivate));
    // The last block reads short at the end of the file: its bytes past the end are zeros.
    if (got < bytes) std::memset(data.data() + got, 0, bytes - got);
    SFS_ASSIGN(result.bytes_moved, engine_->relocate_sync_locked(ino, start, data));
    return result;
  }();
  if (Status released = fs_->release_inode(ino); !released.ok() && r.ok()) return released;
  return r;
}

void Volume::read_async(uint64_t ino, uint64_t pos, std::span<uint8_t> dst, ReadMemory memory, DirectIo::Done done) {
  engine_->read(ino, pos, dst, memory, std::move(done));
}

SourceUse Volume::write_async(uint64_t ino, uint64_t pos, WriteSource src, DirectIo::Done done) {
  // A keep that gives nothing (a caller outside the receive loop) is no way to keep src: the
  // call then waits for a borrowed source like a caller without keep.
  auto kept_nothing = std::make_shared<bool>(false);
  if (src.keep) {
    src.keep = [keep = std::move(src.keep), kept_nothing] {
      std::shared_ptr<const void> k = keep();
      *kept_nothing = k == nullptr;
      return k;
    };
  } else {
    *kept_nothing = true;
  }
  auto finished = std::make_shared<std::promise<void>>();
  std::future<void> waited = finished->get_future();
  const SourceUse use = engine_->write(ino, pos, std::move(src), [done = std::move(done), finished](Result<size_t> r) {
    done(std::move(r));
    finished->set_value();
  });
  if (use == SourceUse::kBorrowed && *kept_nothing) wait_for_io(waited);  // it may be staged on this thread
  return use;
}

void Volume::write_behind(uint64_t ino, uint64_t pos, WriteSource src, DirectIo::Done done) {
  struct Answer {
    DirectIo::Done done;
    std::atomic<bool> early{false};
    uint64_t ticket = 0;  // WriteBehind's, when early (written before early is set)
  };
  auto answer = std::make_shared<Answer>();
  answer->done = std::move(done);
  const size_t len = src.bytes.size();
  src.submitted = [this, ino, len, answer] {
    const std::optional<uint64_t> ticket = behind_.started(ino);
    if (!ticket) return;  // no memory to note it: answered when done instead
    answer->ticket = *ticket;
    answer->early.store(true, std::memory_order_release);
    answer->done(len);
  };
  (void)write_async(ino, pos, std::move(src), [this, ino, pos, len, answer](Result<size_t> r) {
    if (!answer->early.load(std::memory_order_acquire)) return answer->done(std::move(r));
    Status failed;
    if (!r.ok()) failed = r.status();
    else if (*r != len) failed = Status::error(EIO, "inode " + std::to_string(ino) + ": a buffered write reached the device short");
    // Logged for the first few (a device that died fails every write; the shutdown is logged apart).
    constexpr uint64_t kLoggedFailures = 10;
    if (!failed.ok() && behind_.failed_after_answer() < kLoggedFailures)
      std::fprintf(stderr, "stablefs: inode %llu: buffered write of %zu bytes at %llu failed after its answer: %s\n",
                   (unsigned long long)ino, len, (unsigned long long)pos, failed.message().c_str());
    behind_.finished(ino, answer->ticket, failed);
  });
}

Status Volume::fsync(uint64_t ino, bool datasync) {
  behind_.wait(ino);
  Status failed = behind_.take_error(ino);
  Status synced = fs_->fsync(ino, datasync);
  return failed.ok() ? synced : failed;
}

void Volume::open_file(uint64_t ino) {
  {
    MutexLock lock(handles_mu_);
    ++open_handles_[ino];
  }
  try {
    fs_->acquire_inode(ino);
  } catch (const std::bad_alloc&) {
    MutexLock lock(handles_mu_);
    if (--open_handles_[ino] == 0) open_handles_.erase(ino);
    throw;
  }
}

Status Volume::close_file(uint64_t ino, bool* blocks_changed) noexcept {
  bool last = true;
  {
    MutexLock lock(handles_mu_);
    auto it = open_handles_.find(ino);
    if (it != open_handles_.end() && --it->second != 0) last = false;
    else if (it != open_handles_.end()) open_handles_.erase(it);
  }
  // Each step on its own: a trim that fails still lets the hold go.
  auto step = [](auto&& fn) noexcept -> Status {
    try {
      return fn();
    } catch (const std::bad_alloc&) {
      return Status::error(ENOMEM, "out of memory");  // short: no allocation
    }
  };
  Status trimmed;
  if (last) {
    trimmed = step([&]() -> Status {
      SFS_ASSIGN(const bool had_space, release(ino));
      if (blocks_changed != nullptr) *blocks_changed = had_space;
      return {};
    });
  }
  Status dropped = step([&] { return fs_->release_inode(ino); });
  return trimmed.ok() ? dropped : trimmed;
}

Result<bool> Volume::release(uint64_t ino) {
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, true);
  return space_->trim_speculative(ino);
}

Result<uint64_t> Volume::seek(uint64_t ino, uint64_t offset, bool want_data) {
  const FileRangeLocks::Held whole_file = locks_.lock(ino, 0, ~0ull, false);
  return iomap_seek(*mapper_, ino, offset, want_data);
}

Status Volume::sync() {
  behind_.wait_all();
  SFS_TRY(fs_->sync());
  return {};
}

Status Volume::set_read_only(bool read_only) {
  if (read_only) {
    behind_.wait_all();
    auto listed = space_->listed_speculative();
    if (listed.ok())
      for (uint64_t ino : *listed) (void)release(ino);  // a failure leaves it listed (see volume.h)
  }
  return fs_->set_read_only(read_only);
}

Status Volume::close() {
  if (closed_) return {};
  closed_ = true;
  queue_.reset();  // waits for in-flight I/O
  if (!fs_) return {};  // open() failed before the filesystem was opened
  Status trimmed = space_ ? space_->trim_listed_speculative() : Status{};
  Status closed = fs_->close();
  return closed.ok() ? trimmed : closed;
}

}  // namespace stablefs
