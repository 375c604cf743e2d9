// Filesystem: what the online scrub needs of the metadata — a walk over regular files in inode
// order, and its saved state, one item (fs_items.h: ScrubStateRecord) under the orphan-list
// objectid.
#include <sys/stat.h>

#include "fs/namespace/filesystem.h"

namespace stablefs {
namespace {

constexpr size_t kScrubStateOpBlocks = 8;

}  // namespace

Result<std::optional<Inode>> Filesystem::next_regular_file(uint64_t from) {
  MutexLock lock(inodes_.mutex());
  BTree& tree = store_locked().fs_tree();
  uint64_t at = from;
  for (;;) {
    // Each inode's items start with its inode item: a scan from (at, inode) meets that first.
    // Anything else it meets (a directory's entries, list items) sends the next scan to the
    // following objectid, so a large directory is skipped in one step, not item by item.
    std::optional<Inode> found;
    std::optional<uint64_t> next;
    SFS_TRY(tree.scan(Key{at, kItemInode, 0}, Key{~0ull, 0xFF, ~0ull}, [&](const Key& k, std::span<const uint8_t> v) {
      if (k.type == kItemInode) {
        auto rec = InodeRecord::decode(v, k.objectid);
        if (!rec.ok()) {
          next = k.objectid + 1;  // a damaged inode is fsck's to report; the walk goes on
          return false;
        }
        if (S_ISREG(rec->mode)) {
          found = Inode{k.objectid, *rec};
          return false;
        }
      }
      next = k.objectid + 1;
      return false;
    }));
    if (found) return found;
    if (!next || *next == 0) return std::optional<Inode>{};
    at = *next;
  }
}

Result<std::optional<ScrubStateRecord>> Filesystem::load_scrub_state() {
  MutexLock lock(inodes_.mutex());
  std::vector<uint8_t> v;
  SFS_ASSIGN(const bool found, store_locked().fs_tree().lookup(ScrubStateRecord::key(), &v));
  if (!found) return std::optional<ScrubStateRecord>{};
  SFS_ASSIGN(ScrubStateRecord rec, ScrubStateRecord::decode(v, ScrubStateRecord::key()));
  return std::optional<ScrubStateRecord>(rec);
}

Status Filesystem::save_scrub_state(const ScrubStateRecord& rec) {
  MutexLock lock(inodes_.mutex());
  MetadataStore& store = store_locked();
  if (store.read_only()) return Status::error(EROFS, "read-only filesystem");
  return in_operation(store, kScrubStateOpBlocks, [&]() -> Status {
    const std::vector<uint8_t> value = rec.encode();
    return store.fs_tree().put(ScrubStateRecord::key(), value);
  });
}

}  // namespace stablefs
