#include "fs/inode/orphan_list.h"

#include "fs/format/format.h"
#include "fs/inode/inode_release.h"

namespace stablefs {
namespace {

static_assert(kOrphanListObjectid == kRootIno, "the orphan list hangs off the root directory's objectid");

// Extents freed per step of a reclaim, and the metadata blocks such a step may dirty: the
// extent items' leaves, one or two bitmap blocks and the checksum groups of each extent.
constexpr size_t kExtentsPerStep = 32;
constexpr size_t kStepBlocks = 96;

// One operation around fn; a failure after changes shuts the store down (end_operation).
template <typename Fn>
auto in_operation(MetadataStore& store, size_t blocks, Fn&& fn) -> decltype(fn()) {
  SFS_TRY(store.begin_operation(blocks));
  auto r = fn();
  if (!r.ok()) return store.end_operation(r.status());
  SFS_TRY(store.end_operation({}));
  return r;
}

}  // namespace

Status add_orphan(MetadataStore& store, uint64_t ino, uint64_t generation) {
  SFS_TRY(store.fs_tree().insert(orphan_key(ino), OrphanRecord{generation}.encode()));
  store.superblock().ro_compat |= kRoCompatOrphans;
  return {};
}

Status remove_orphan(MetadataStore& store, uint64_t ino) {
  SFS_TRY(store.fs_tree().remove(orphan_key(ino)));
  SFS_ASSIGN(const bool any, store.fs_tree().contains_any(orphan_key(0), orphan_key(~0ull)));
  if (!any) store.superblock().ro_compat &= ~kRoCompatOrphans;
  return {};
}

Result<std::vector<Orphan>> list_orphans(MetadataStore& store) {
  std::vector<Orphan> out;
  Status decode_error;
  SFS_TRY(store.fs_tree().scan(orphan_key(0), orphan_key(~0ull), [&](const Key& k, std::span<const uint8_t> v) {
    auto rec = OrphanRecord::decode(v, k);
    if (!rec.ok()) {
      decode_error = rec.status();
      return false;
    }
    out.push_back({k.offset, *rec});
    return true;
  }));
  SFS_TRY(decode_error);
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
