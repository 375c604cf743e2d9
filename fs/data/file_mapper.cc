#include "fs/data/file_mapper.h"

#include <sys/stat.h>

#include "fs/inode/checksum_store.h"
#include "fs/inode/data_release.h"
#include "fs/inode/extent_map.h"
#include "fs/inode/speculative_list.h"

namespace stablefs {
namespace {

// Metadata blocks one begin() or one ioend range may dirty: a few tree paths, the bitmap
// blocks of one extent and a few checksum groups.
constexpr size_t kMapOpBlocks = 64;

// Speculative preallocation for an appending write (at or past EOF) of `want` blocks into a
// hole of `hole` blocks: once the file holds (has allocated) kMinSpeculativeFileBlocks, as many
// blocks again as it holds (not its size: a sparse file holds little), so an appending stream's extents grow with it (XFS's eofblocks policy), within the
// hole and one mapping. None while free space is below 1/16 of the filesystem, and never more
// than 1/32 of what is free, so a nearly full filesystem is not handed out speculatively.
constexpr uint64_t kMinSpeculativeFileBlocks = 16;

uint64_t speculative_blocks(const Allocator& alloc, uint64_t file_blocks, uint64_t want, uint64_t hole) {
  if (file_blocks < kMinSpeculativeFileBlocks || want >= hole || want >= FileMapper::kMaxMappingBlocks) return 0;
  const uint64_t free = alloc.allocatable_blocks();
  if (free < alloc.total_blocks() / 16 + kMetadataReserveBlocks) return 0;
  return std::min({file_blocks, (free - kMetadataReserveBlocks) / 32, hole - want, FileMapper::kMaxMappingBlocks - want});
}

// Whether a piece of the extent map holds written data (not a hole, not unwritten space).
bool holds_written_data(const MappedPiece& p) { return p.extent && !(p.extent->flags & kExtentUnwritten); }

}  // namespace

Result<uint64_t> data_blocks_available(MetadataStore& store, uint64_t want) {
  SFS_TRY(store.make_allocatable(want + kMetadataReserveBlocks));
  const uint64_t avail = store.allocator().allocatable_blocks();
  if (avail <= kMetadataReserveBlocks)
    return Status::error(ENOSPC, store.device().name() + ": no space left for file data");
  return std::min(want, avail - kMetadataReserveBlocks);
}

Result<uint64_t> FileMapper::file_size(uint64_t ino) {
  MutexLock lock(inodes_.mutex());
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  return inode.rec.size;
}

Status FileMapper::read_checksums(uint64_t dev_addr, std::span<std::optional<uint64_t>> out) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  if (!store.superblock().data_checksums()) {
    for (auto& o : out) o.reset();
    return {};
  }
  return ChecksumStore(store.csum_tree()).get(dev_addr / store.superblock().block_size, out);
}

Result<Iomap> FileMapper::begin(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) {
  MutexLock lock(inodes_.mutex());
  return begin_locked(ino, pos, len, op);
}

Result<Iomap> FileMapper::begin_read(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op,
                                     std::span<std::optional<uint64_t>> out, size_t* filled) {
  *filled = 0;
  MutexLock lock(inodes_.mutex());
  SFS_ASSIGN(Iomap map, begin_locked(ino, pos, len, op));
  MetadataStore& store = inodes_.store();
  if ((op & kIomapWrite) || map.type != IomapType::kMapped || !store.superblock().data_checksums()) return map;
  const uint64_t bs = store.superblock().block_size;
  const uint64_t start = pos / bs * bs;  // where the mapping's use begins (map.offset here)
  const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), (map.end() - start) / bs));
  SFS_TRY(ChecksumStore(store.csum_tree()).get((map.dev_addr + (start - map.offset)) / bs, out.first(n)));
  *filled = n;
  return map;
}

Result<Iomap> FileMapper::begin_locked(uint64_t ino, uint64_t pos, uint64_t len, uint32_t op) {
  MetadataStore& store = inodes_.store();
  const uint64_t bs = store.superblock().block_size;
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (!S_ISREG(inode.rec.mode)) return Status::error(S_ISDIR(inode.rec.mode) ? EISDIR : EINVAL, "not a regular file");
  const uint64_t fb = pos / bs;
  const uint64_t want = std::max<uint64_t>(1, (len + bs - 1) / bs);
  ExtentMap extents(store, ino);
  SFS_ASSIGN(MappedPiece piece, extents.find(fb));
  uint64_t n = std::min(piece.nblocks, want);
  Iomap map;
  map.offset = fb * bs;
  map.file_size = inode.rec.size;

  auto as_stored = [&] {
    map.length = n * bs;
    if (piece.extent) {
      map.type = piece.extent->flags & kExtentUnwritten ? IomapType::kUnwritten : IomapType::kMapped;
      map.dev_addr = piece.extent->dev_block * bs;
      // Speculative only past EOF: space the file has grown over is ordinary unwritten space.
      const uint64_t eof_block = (inode.rec.size + bs - 1) / bs;
      if ((piece.extent->flags & kExtentSpeculative) && fb >= eof_block) map.flags |= kIomapSpeculative;
    }
    return map;
  };
  if (!(op & kIomapWrite)) return as_stored();
  if (store.read_only()) return Status::error(EROFS, "filesystem is read-only");
  if (store.shut_down()) return Status::error(EIO, "filesystem has shut down after an earlier error");

  if ((op & kIomapPrealloc) && piece.extent) {
    // Speculative space the caller asks for explicitly is the caller's now: not trimmed.
    if (piece.extent->flags & kExtentSpeculative) {
      const uint64_t step = std::min(n, kMaxMappingBlocks);
      SFS_TRY(store.begin_operation(kMapOpBlocks));
      ExtentRecord kept = *piece.extent;
      kept.nblocks = step;
      kept.flags &= ~kExtentSpeculative;
      SFS_TRY(store.end_operation(out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
        return extents.replace(fb, step, kept).status();
      })));
      n = step;
      piece.extent = kept;
    }
    return as_stored();
  }

  if (op & kIomapRelocate) return begin_relocation(ino, extents, piece, fb, want, map);

  if (piece.extent && (piece.extent->flags & kExtentUnwritten || !store.superblock().data_checksums())) {
    map.type = piece.extent->flags & kExtentUnwritten ? IomapType::kUnwritten : IomapType::kMapped;
    map.dev_addr = piece.extent->dev_block * bs;
    map.length = n * bs;
    return map;
  }
  if (piece.extent) {
    SFS_ASSIGN(const uint64_t count, data_blocks_available(store, std::min(n, kMaxMappingBlocks)));
    // Out of place: reserve new space now, claim it at ioend.
    SFS_ASSIGN(Extent e, store.allocator().reserve(piece.extent->dev_block + piece.extent->nblocks, count, 1));
    reserved_[e.start] = e.length;
    map.type = IomapType::kMapped;
    map.flags = kIomapShared;
    map.dev_addr = e.start * bs;
    map.length = e.length * bs;
    return map;
  }
  // A hole: allocate and record an unwritten extent; at or past EOF, speculatively more (the
  // whole extent is marked speculative until written: what the stream does not use is freed
  // when the file is closed).
  const uint64_t eof_block = (inode.rec.size + bs - 1) / bs;
  const uint64_t extra = fb >= eof_block && !(op & kIomapPrealloc)
                             ? speculative_blocks(store.allocator(), inode.rec.blocks, n, piece.nblocks)
                             : 0;
  const uint32_t flags = extra > 0 ? kExtentUnwritten | kExtentSpeculative : kExtentUnwritten;
  SFS_ASSIGN(const uint64_t count, data_blocks_available(store, std::min(n + extra, kMaxMappingBlocks)));
  SFS_TRY(store.begin_operation(kMapOpBlocks));
  SFS_ASSIGN(uint64_t goal, extents.goal_before(fb));
  auto allocated = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Result<Iomap> {
    SFS_ASSIGN(Extent e, store.allocator().allocate(goal, count, 1));
    SFS_TRY(extents.replace(fb, e.length, ExtentRecord{e.start, e.length, flags}));
    if (extra > 0) SFS_TRY(add_speculative(store, ino));  // listed in the same operation
    inode.rec.blocks += e.length;
    if (op & kIomapPrealloc) inode.rec.ctime = now_timespec();  // fallocate(2) changes ctime
    SFS_TRY(inodes_.save(inode));
    map.type = IomapType::kUnwritten;
    map.flags = kIomapNew;
    map.dev_addr = e.start * bs;
    map.length = e.length * bs;
    return map;
  });
  SFS_TRY(store.end_operation(allocated.status()));
  return allocated;
}

Result<Iomap> FileMapper::begin_relocation(uint64_t ino, ExtentMap& extents, const MappedPiece& piece, uint64_t fb,
                                           uint64_t want, Iomap map) {
  MetadataStore& store = inodes_.store();
  const uint64_t bs = store.superblock().block_size;
  if (!holds_written_data(piece))
    return Status::error(EINVAL, "inode " + std::to_string(ino) + ": relocation of a range that starts without written data");
  const uint64_t limit = std::min(want, kMaxMappingBlocks);
  uint64_t run = 0;
  SFS_TRY(extents.walk(fb, [&](const MappedPiece& p) {
    if (!holds_written_data(p)) return false;
    run += p.nblocks;
    return run < limit;
  }));
  run = std::min(run, limit);
  // Right after the block before the range, so that neighbouring relocated ranges follow
  // each other on the device.
  uint64_t goal = 0;
  if (fb > 0) {
    SFS_ASSIGN(MappedPiece before, extents.find(fb - 1));
    if (before.extent) goal = before.extent->dev_block + 1;
  }
  SFS_ASSIGN(const uint64_t count, data_blocks_available(store, run));
  if (count < run) return Status::error(ENOSPC, store.device().name() + ": no room to relocate file data");
  SFS_ASSIGN(Extent e, store.allocator().reserve(goal, run, run));
  reserved_[e.start] = e.length;
  map.type = IomapType::kMapped;
  map.flags = kIomapShared | kIomapRelocated;
  map.dev_addr = e.start * bs;
  map.length = e.length * bs;
  return map;
}

Result<WrittenRun> FileMapper::written_run(uint64_t ino, uint64_t pos, uint64_t len, uint64_t min_fragments) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  const uint64_t bs = store.superblock().block_size;
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  const uint64_t first = pos / bs, end = first + (len + bs - 1) / bs;
  WrittenRun run;
  run.file_size = inode.rec.size;
  run.start_block = end;
  if (!S_ISREG(inode.rec.mode)) return run;
  WrittenRun current;         // the run being walked
  bool found = false;
  uint64_t next_dev = ~0ull;  // the device block that would continue the last piece
  SFS_TRY(ExtentMap(store, ino).walk(first, [&](const MappedPiece& p) {
    if (p.file_block >= end) return false;
    if (!holds_written_data(p)) {
      if (current.blocks > 0) {  // a run ends here: the one, or look on past it
        if (current.fragments >= min_fragments) {
          found = true;
          return false;
        }
        current = {};
        next_dev = ~0ull;
      }
      return p.nblocks < end - p.file_block;  // look past it while in the range
    }
    if (current.blocks == 0) current.start_block = p.file_block;
    const uint64_t n = std::min(p.nblocks, end - p.file_block);
    if (p.extent->dev_block != next_dev) ++current.fragments;
    next_dev = p.extent->dev_block + n;
    current.blocks += n;
    return p.file_block + n < end;
  }));
  if (found || (current.blocks > 0 && current.fragments >= min_fragments)) {
    run.start_block = current.start_block;
    run.blocks = current.blocks;
    run.fragments = current.fragments;
  }
  const Allocator& alloc = store.allocator();
  run.room_to_move = alloc.allocatable_blocks() >= run.blocks + alloc.total_blocks() / 16 + kMetadataReserveBlocks;
  return run;
}

void FileMapper::set_observer(WrittenRangeObserver* observer) {
  MutexLock lock(inodes_.mutex());
  observer_ = observer;
}

Status FileMapper::end(uint64_t, const Iomap& map, uint64_t pos, uint64_t, uint64_t done, uint32_t op) {
  if (!(op & kIomapWrite) || !(map.flags & kIomapShared)) return {};
  const uint64_t bs = inodes_.block_size();
  // The part of the reservation past what the engine used will never be written. Most
  // writes use all of it: the lock is taken only when there is something to hand back.
  const uint64_t first = map.dev_addr / bs + (pos - map.offset) / bs;
  const uint64_t used = (done + bs - 1) / bs;
  const uint64_t last = map.dev_addr / bs + map.length / bs;
  if (first + used >= last) return {};
  MutexLock lock(inodes_.mutex());
  take_reserved(first + used, last - first - used);
  inodes_.store().allocator().unreserve({first + used, last - first - used});
  return {};
}

void FileMapper::take_reserved(uint64_t start, uint64_t n) {
  auto it = reserved_.upper_bound(start);
  if (it == reserved_.begin()) return;
  --it;
  const uint64_t r_start = it->first, r_len = it->second;
  if (r_start + r_len < start + n) return;  // not ours: nothing to forget
  reserved_.erase(it);
  if (start > r_start) reserved_[r_start] = start - r_start;
  if (r_start + r_len > start + n) reserved_[start + n] = r_start + r_len - start - n;
}

uint64_t FileMapper::reserved_blocks() const {
  MutexLock lock(inodes_.mutex());
  uint64_t total = 0;
  for (auto& [start, n] : reserved_) total += n;
  return total;
}

void FileMapper::release_reservation(const WrittenRange& r) {
  const uint64_t bs = inodes_.store().superblock().block_size;
  const uint64_t start = r.map.dev_addr / bs + (r.pos - r.map.offset) / bs;
  take_reserved(start, r.len / bs);
  inodes_.store().allocator().unreserve({start, r.len / bs});
}

Status FileMapper::complete_writes(uint64_t ino, std::span<const WrittenRange> ranges, uint64_t end_pos, Status) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  const uint64_t bs = store.superblock().block_size;
  // Space set aside for pieces that never reached the device goes back first.
  for (const WrittenRange& r : ranges)
    if (!r.reached_device && (r.map.flags & kIomapShared)) release_reservation(r);
  bool any = false;
  for (const WrittenRange& r : ranges) any |= r.reached_device;
  if (!any) return {};

  // Until its reservation is claimed, an out-of-place range goes back to the allocator if the
  // ioend fails: the old data stays mapped and nothing is left reserved.
  std::vector<bool> claimed(ranges.size(), false);
  auto release_unclaimed = [&]() REQUIRES(inodes_.mutex()) {
    for (size_t i = 0; i < ranges.size(); ++i)
      if (ranges[i].reached_device && (ranges[i].map.flags & kIomapShared) && !claimed[i]) release_reservation(ranges[i]);
  };
  if (Status began = store.begin_operation(kMapOpBlocks); !began.ok()) {
    release_unclaimed();
    return began;
  }
  store.note_data_written();
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_ASSIGN(Inode inode, inodes_.load(ino));
    ExtentMap extents(store, ino);
    ChecksumStore checksums(store.csum_tree());
    for (size_t i = 0; i < ranges.size(); ++i) {
      const WrittenRange& r = ranges[i];
      if (!r.reached_device) continue;
      const uint64_t fb = r.pos / bs, n = r.len / bs;
      const uint64_t dev = r.map.dev_addr / bs + (r.pos - r.map.offset) / bs;
      if (r.map.flags & kIomapShared) {
        SFS_TRY(store.allocator().claim({dev, n}));
        take_reserved(dev, n);
        claimed[i] = true;
        SFS_ASSIGN(auto displaced, extents.replace(fb, n, ExtentRecord{dev, n, 0}));
        for (const DisplacedPiece& d : displaced) {
          SFS_TRY(release_data_blocks(store, d.extent.dev_block, d.extent.nblocks));
          inode.rec.blocks -= d.extent.nblocks;
        }
        inode.rec.blocks += n;
      } else if (r.map.type == IomapType::kUnwritten) {
        // Same blocks, now written.
        SFS_TRY(extents.replace(fb, n, ExtentRecord{dev, n, 0}));
      }
      if (store.superblock().data_checksums()) {
        if (r.checksums.size() != n) return Status::error(EIO, "ioend: checksum count does not match the range");
        SFS_TRY(checksums.set(dev, r.checksums));
      }
    }
    // An overwrite in place that does not grow the file changes only the times: fdatasync
    // need not commit for it. A relocation moves data without changing it: no times.
    bool in_place_only = end_pos <= inode.rec.size;
    bool relocation_only = true;
    for (const WrittenRange& r : ranges) {
      if (!r.reached_device) continue;
      if (r.map.type != IomapType::kMapped || (r.map.flags & kIomapShared)) in_place_only = false;
      if (!(r.map.flags & kIomapRelocated)) {
        relocation_only = false;
        if (observer_ != nullptr && r.len < kSmallWriteBytes) observer_->small_write(ino, r.pos, r.len);
      }
    }
    // A relocation writes the last block whole, past an end inside it: the size stays.
    if (!relocation_only) {
      if (end_pos > inode.rec.size) inode.rec.size = end_pos;
      inode.rec.mtime = inode.rec.ctime = now_timespec();
    }
    return inodes_.save(inode, in_place_only ? InodeChange::kTimesOnly : InodeChange::kMetadata);
  });
  if (!st.ok()) release_unclaimed();
  return store.end_operation(st);
}

}  // namespace stablefs
