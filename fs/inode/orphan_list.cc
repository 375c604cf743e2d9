#include "fs/inode/orphan_list.h"

#include "fs/format/format.h"
#include "fs/inode/inode_list.h"
#include "fs/inode/inode_release.h"
#include "fs/meta/item_scan.h"

namespace stablefs {
namespace {

static_assert(kOrphanListObjectid == kRootIno, "the orphan list hangs off the root directory's objectid");

// Extents freed per step of a reclaim, and the metadata blocks such a step may dirty: the
// extent items' leaves, one or two bitmap blocks and the checksum groups of each extent.
constexpr size_t kExtentsPerStep = 32;
constexpr size_t kStepBlocks = 96;

}  // namespace

constexpr InodeList kOrphanList{kItemOrphan, &Superblock::ro_compat, kRoCompatOrphans};

Status add_orphan(MetadataStore& store, uint64_t ino, uint64_t generation) {
  return kOrphanList.add(store, ino, OrphanRecord{generation}.encode(), false);
}

Status remove_orphan(MetadataStore& store, uint64_t ino) { return kOrphanList.remove(store, ino, false); }

Result<std::vector<Orphan>> list_orphans(MetadataStore& store) {
  std::vector<Orphan> out;
  SFS_TRY(scan_items<OrphanRecord>(store.fs_tree(), orphan_key(0), orphan_key(~0ull), [&](const Key& k, OrphanRecord rec) {
    out.push_back({k.offset, rec});
    return true;
  }));
  return out;
}

Result<Reclaimed> reclaim_orphan(MetadataStore& store, uint64_t ino) {
  // Decide once, before changing anything, whether the entry is live.
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool listed, store.fs_tree().lookup(orphan_key(ino), &v));
  if (!listed) return Reclaimed::kAbsent;
  SFS_ASSIGN(OrphanRecord entry, OrphanRecord::decode(v, orphan_key(ino)));
  SFS_ASSIGN(bool has_inode, store.fs_tree().lookup({ino, kItemInode, 0}, &v));
  bool live = false;
  if (has_inode) {
    SFS_ASSIGN(InodeRecord rec, InodeRecord::decode(v, ino));
    live = rec.nlink == 0 && rec.generation == entry.generation && ino != kRootIno;
  }
  if (!live) {
    SFS_TRY(in_operation(store, 8, [&]() -> Status { return remove_orphan(store, ino); }));
    return Reclaimed::kStale;
  }
  for (;;) {
    SFS_ASSIGN(bool done, in_operation(store, kStepBlocks, [&] { return release_inode_extents(store, ino, kExtentsPerStep); }));
    if (done) break;
  }
  SFS_TRY(in_operation(store, kStepBlocks, [&]() -> Status {
    SFS_TRY(remove_inode_items(store, ino));
    return remove_orphan(store, ino);
  }));
  return Reclaimed::kFreed;
}

}  // namespace stablefs
