#include "fs/data/file_space.h"

#include <sys/stat.h>

#include <optional>
#include <vector>

#include "fs/inode/data_release.h"
#include "fs/inode/extent_map.h"
#include "fs/inode/speculative_list.h"
#include "fs/inode/truncate_list.h"
#include "iomap/space.h"

namespace stablefs {
namespace {

constexpr size_t kStepOpBlocks = 96;

}  // namespace

Status FileSpace::set_size(uint64_t ino, uint64_t size) {
  uint64_t first_free;
  {
    MutexLock lock(inodes_.mutex());
    MetadataStore& store = inodes_.store();
    SFS_TRY(store.begin_operation(kStepOpBlocks));
    SFS_ASSIGN(Inode inode, inodes_.load(ino));
    if (!S_ISREG(inode.rec.mode)) return Status::error(S_ISDIR(inode.rec.mode) ? EISDIR : EINVAL, "not a regular file");
    const uint64_t bs = store.superblock().block_size;
    // Truncating to the size it has frees what lies past EOF too (preallocation), as XFS
    // does; growing keeps it.
    const bool shrinks = size <= inode.rec.size;
    inode.rec.size = size;
    Timespec now = now_timespec();
    inode.rec.mtime = inode.rec.ctime = now;
    Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
      // Shrinking leaves blocks past EOF until the steps below free them. Listed in the same
      // operation, so that whatever commits in between, the next mount finishes the truncate
      // before the file can grow over their old data.
      if (shrinks) SFS_TRY(add_pending_truncate(store, ino));
      return inodes_.save(inode);
    });
    SFS_TRY(store.end_operation(st));
    if (!shrinks) return {};
    first_free = (size + bs - 1) / bs * bs;
  }
  // Blocks past the new end, in steps (each leaves a consistent file: extents past EOF are legal).
  Status freed = first_free >= kIomapEndOfAnyFile
                     ? Status{}
                     : iomap_unmap_range(mapper_, *this, ino, first_free, kIomapEndOfAnyFile - first_free, UnmapWhat::kAll, true);
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  // Half freed, the file must not grow (a write, a truncate up) until the rest is: stop
  // writing and leave it listed for the next mount to finish.
  if (!freed.ok()) return store.shut_down_with(freed.with_context("truncate of inode " + std::to_string(ino)));
  return in_operation(store, kStepOpBlocks, [&]() REQUIRES(inodes_.mutex()) { return remove_pending_truncate(store, ino); });
}

Status FileSpace::extend_size(uint64_t ino, uint64_t size, bool change_mtime) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  SFS_ASSIGN(Inode inode, inodes_.load(ino));
  if (size <= inode.rec.size) return {};
  SFS_TRY(store.begin_operation(kStepOpBlocks));
  inode.rec.size = size;
  inode.rec.ctime = now_timespec();
  if (change_mtime) inode.rec.mtime = inode.rec.ctime;
  return store.end_operation(inodes_.save(inode));
}

Result<uint64_t> FileSpace::unmap(uint64_t ino, uint64_t pos, uint64_t len, bool change_times) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  const uint64_t bs = store.superblock().block_size;
  const uint64_t fb = pos / bs, want = std::max<uint64_t>(1, len / bs);
  ExtentMap extents(store, ino);
  SFS_ASSIGN(MappedPiece piece, extents.find(fb));
  const uint64_t n = std::min({piece.nblocks, want, kStepBlocks});
  if (!piece.extent) return n * bs;  // a hole already
  SFS_TRY(store.begin_operation(kStepOpBlocks));
  Status st = out_of_memory_as_error([&]() REQUIRES(inodes_.mutex()) -> Status {
    SFS_ASSIGN(Inode inode, inodes_.load(ino));
    SFS_ASSIGN(const uint64_t released, unmap_file_blocks(store, ino, fb, n));
    inode.rec.blocks -= released;
    if (change_times) inode.rec.ctime = inode.rec.mtime = now_timespec();
    return inodes_.save(inode);
  });
  SFS_TRY(store.end_operation(st));
  return n * bs;
}

Result<bool> FileSpace::trim_speculative(uint64_t ino) {
  // The speculative extents past EOF go step by step; the inode leaves the speculative list
  // last (a crash before that leaves it listed for the next mount).
  uint64_t eof = 0;
  bool regular = false;
  {
    MutexLock lock(inodes_.mutex());
    if (inodes_.store().read_only()) return false;  // left for a read-write mount to trim
    Result<Inode> inode = inodes_.load(ino);
    if (!inode.ok() && inode.status().code() != ENOENT) return inode.status();
    if (inode.ok() && S_ISREG(inode->rec.mode)) {
      const uint64_t bs = inodes_.block_size();
      regular = true;
      eof = (inode->rec.size + bs - 1) / bs * bs;
    }
  }
  if (regular && eof < kIomapEndOfAnyFile)
    SFS_TRY(iomap_unmap_range(mapper_, *this, ino, eof, kIomapEndOfAnyFile - eof, UnmapWhat::kSpeculative, false));
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = inodes_.store();
  SFS_ASSIGN(const bool listed, store.fs_tree().lookup(speculative_key(ino), nullptr));
  if (!listed) return false;
  SFS_TRY(store.begin_operation(kStepOpBlocks));
  SFS_TRY(store.end_operation(remove_speculative(store, ino)));
  return true;
}

Result<std::vector<uint64_t>> FileSpace::listed_speculative() {
  MutexLock lock(inodes_.mutex());
  if (inodes_.store().read_only()) return std::vector<uint64_t>{};
  return list_speculative(inodes_.store());
}

Status FileSpace::trim_listed_speculative() {
  SFS_ASSIGN(const std::vector<uint64_t> listed, listed_speculative());
  // One inode that cannot be trimmed does not keep the others from it; it stays listed.
  Status first_error;
  for (uint64_t ino : listed) {
    Status s = trim_speculative(ino).status();
    if (!s.ok() && first_error.ok())
      first_error = s.with_context("inode " + std::to_string(ino) + ": trimming speculative preallocation");
  }
  return first_error;
}

}  // namespace stablefs
