#include "fs/data/file_space.h"

#include <sys/stat.h>

#include <optional>
#include <utility>
#include <vector>

#include "fs/inode/data_release.h"
#include "fs/inode/extent_map.h"
#include "fs/data/file_mapper.h"
#include "fs/inode/speculative_list.h"

namespace stablefs {
namespace {

constexpr size_t kStepOpBlocks = 96;

}  // namespace

Status FileSpace::set_size(uint64_t ino, uint64_t size) {
  uint64_t first_free_block;
  {
    MutexLock lock(inodes_.mutex());
    MetadataStore& store = inodes_.store();
    SFS_TRY(store.begin_operation(kStepOpBlocks));
    SFS_ASSIGN(Inode inode, inodes_.load(ino));
    if (!S_ISREG(inode.rec.mode)) return Status::error(S_ISDIR(inode.rec.mode) ? EISDIR : EINVAL, "not a regular file");
    const uint64_t bs = store.superblock().block_size;
    const bool shrinks = size < inode.rec.size;
    inode.rec.size = size;
    Timespec now = now_timespec();
    inode.rec.mtime = inode.rec.ctime = now;
    Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
      // Shrinking leaves extents past EOF until the steps below free them; speculative ones
      // the file had grown over would be stranded by a crash in between unless listed.
      if (shrinks) SFS_TRY(add_speculative(store, ino));
      return inodes_.save(inode);
    });
    SFS_TRY(store.end_operation(st));
    first_free_block = (size + bs - 1) / bs;
  }
  // Blocks past the new end, in steps (each leaves a consistent file: extents past EOF are legal).
  return punch(ino, first_free_block, ~0ull - first_free_block);
}

Status FileSpace::punch(uint64_t ino, uint64_t first_block, uint64_t nblocks) {
  return free_blocks(ino, first_block, nblocks, true);
}

Status FileSpace::trim_speculative(uint64_t ino) {
  // Find the speculative extents past EOF first, then free them step by step; the inode
  // leaves the speculative list last (a crash before that leaves it listed for the next mount).
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  {
    MutexLock lock(inodes_.mutex());
    MetadataStore& store = inodes_.store();
    if (store.read_only()) return {};  // left for a read-write mount to trim
    Result<Inode> inode = inodes_.load(ino);
    if (!inode.ok() && inode.status().code() != ENOENT) return inode.status();
    if (inode.ok() && S_ISREG(inode->rec.mode)) {
      const uint64_t bs = store.superblock().block_size;
      SFS_TRY(ExtentMap(store, ino).walk((inode->rec.size + bs - 1) / bs, [&](const MappedPiece& piece) {
        if (piece.extent && (piece.extent->flags & kExtentSpeculative))
          ranges.emplace_back(piece.file_block, piece.nblocks);
        return true;
      }));
    }
  }
  for (const auto& [first, n] : ranges) SFS_TRY(free_blocks(ino, first, n, false));
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  SFS_ASSIGN(const bool listed, store.fs_tree().lookup(speculative_key(ino), nullptr));
  if (!listed) return {};
  SFS_TRY(store.begin_operation(kStepOpBlocks));
  return store.end_operation(remove_speculative(store, ino));
}

Status FileSpace::trim_listed_speculative() {
  std::vector<uint64_t> listed;
  {
    MutexLock lock(inodes_.mutex());
    if (inodes_.store().read_only()) return {};
    SFS_ASSIGN(listed, list_speculative(inodes_.store()));
  }
  // One inode that cannot be trimmed does not keep the others from it; it stays listed.
  Status first_error;
  for (uint64_t ino : listed) {
    Status s = trim_speculative(ino);
    if (!s.ok() && first_error.ok())
      first_error = s.with_context("inode " + std::to_string(ino) + ": trimming speculative preallocation");
  }
  return first_error;
}

Status FileSpace::free_blocks(uint64_t ino, uint64_t first_block, uint64_t nblocks, bool touch_times) {
  const uint64_t end = nblocks > ~0ull - first_block ? ~0ull : first_block + nblocks;
  uint64_t pos = first_block;
  while (pos < end) {
    MutexLock lock(inodes_.mutex());
    MetadataStore& store = inodes_.store();
    ExtentMap extents(store, ino);
    SFS_ASSIGN(MappedPiece piece, extents.find(pos));
    if (!piece.extent) {
      if (piece.nblocks >= end - pos) return {};  // nothing more to punch
      pos += piece.nblocks;
      continue;
    }
    const uint64_t n = std::min({piece.nblocks, end - pos, kStepBlocks});
    SFS_TRY(store.begin_operation(kStepOpBlocks));
    Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
      SFS_ASSIGN(Inode inode, inodes_.load(ino));
      SFS_ASSIGN(auto displaced, extents.replace(pos, n, std::nullopt));
      for (const DisplacedPiece& d : displaced) {
        SFS_TRY(release_data_blocks(store, d.extent.dev_block, d.extent.nblocks));
        inode.rec.blocks -= d.extent.nblocks;
      }
      if (touch_times) inode.rec.ctime = inode.rec.mtime = now_timespec();
      return inodes_.save(inode);
    });
    SFS_TRY(store.end_operation(st));
    pos += n;
  }
  return {};
}

Status FileSpace::preallocate(uint64_t ino, uint64_t first_block, uint64_t nblocks, uint64_t extend_to) {
  uint64_t pos = first_block;
  const uint64_t end = first_block + nblocks;
  while (pos < end) {
    MutexLock lock(inodes_.mutex());
    MetadataStore& store = inodes_.store();
    ExtentMap extents(store, ino);
    SFS_ASSIGN(MappedPiece piece, extents.find(pos));
    const uint64_t n = std::min({piece.nblocks, end - pos, kStepBlocks});
    if (piece.extent) {
      // Speculative space the caller asks for explicitly is the caller's now: not trimmed.
      if (piece.extent->flags & kExtentSpeculative) {
        SFS_TRY(store.begin_operation(kStepOpBlocks));
        ExtentRecord kept = *piece.extent;
        kept.nblocks = n;
        kept.flags &= ~kExtentSpeculative;
        SFS_TRY(store.end_operation(extents.replace(pos, n, kept).status()));
      }
      pos += n;
      continue;
    }
    SFS_ASSIGN(const uint64_t can, data_blocks_available(store, n));
    SFS_TRY(store.begin_operation(kStepOpBlocks));
    SFS_ASSIGN(uint64_t goal, extents.goal_before(pos));
    uint64_t got = 0;
    Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
      SFS_ASSIGN(Inode inode, inodes_.load(ino));
      if (!S_ISREG(inode.rec.mode)) return Status::error(EINVAL, "not a regular file");
      SFS_ASSIGN(Extent e, store.allocator().allocate(goal, can, 1));
      SFS_TRY(extents.replace(pos, e.length, ExtentRecord{e.start, e.length, kExtentUnwritten}));
      inode.rec.blocks += e.length;
      inode.rec.ctime = now_timespec();
      got = e.length;
      return inodes_.save(inode);
    });
    SFS_TRY(store.end_operation(st));  // ENOSPC here changed nothing in this step
    pos += got;
  }
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (extend_to <= inode.rec.size) return {};
  SFS_TRY(store.begin_operation(kStepOpBlocks));
  inode.rec.size = extend_to;
  inode.rec.ctime = now_timespec();
  return store.end_operation(inodes_.save(inode));
}

}  // namespace stablefs
