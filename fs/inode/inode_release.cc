#include "fs/inode/inode_release.h"

#include <vector>

#include "fs/inode/data_release.h"
#include "fs/meta/item_scan.h"
#include "fs/format/fs_items.h"
#include "fs/inode/speculative_list.h"
#include "fs/inode/truncate_list.h"

namespace stablefs {

Result<bool> release_inode_extents(MetadataStore& store, uint64_t ino, size_t max_extents) {
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool found, store.fs_tree().lookup({ino, kItemInode, 0}, &v));
  if (!found) return Status::error(ENOENT, "inode " + std::to_string(ino) + " does not exist");
  SFS_ASSIGN(InodeRecord rec, InodeRecord::decode(v, ino));
  std::vector<std::pair<Key, ExtentRecord>> extents;
  bool more = false;
  SFS_TRY(scan_items<ExtentRecord>(store.fs_tree(), {ino, kItemExtent, 0}, {ino, kItemExtent, ~0ull},
                                   [&](const Key& k, const ExtentRecord& e) {
                                     if (extents.size() == max_extents) {
                                       more = true;
                                       return false;
                                     }
                                     extents.emplace_back(k, e);
                                     return true;
                                   }));
  if (extents.empty()) return true;
  uint64_t freed = 0;
  for (const auto& [k, e] : extents) {
    SFS_TRY(release_data_blocks(store, e.dev_block, e.nblocks));
    SFS_TRY(store.fs_tree().remove(k));
    freed += e.nblocks;
  }
  rec.blocks = rec.blocks >= freed ? rec.blocks - freed : 0;
  SFS_TRY(store.fs_tree().put({ino, kItemInode, 0}, rec.encode()));
  return !more;
}

Status remove_inode_items(MetadataStore& store, uint64_t ino) {
  std::vector<Key> keys;
  std::vector<ExtentRecord> extents;
  Status decode_error;
  SFS_TRY(store.fs_tree().scan({ino, 0, 0}, {ino, 0xff, ~0ull}, [&](const Key& k, std::span<const uint8_t> v) {
    keys.push_back(k);
    if (k.type == kItemExtent) {
      auto e = ExtentRecord::decode(v, k);
      if (!e.ok()) {
        decode_error = e.status();
        return false;
      }
      extents.push_back(*e);
    }
    return true;
  }));
  SFS_TRY(decode_error);
  for (const ExtentRecord& e : extents) SFS_TRY(release_data_blocks(store, e.dev_block, e.nblocks));
  for (const Key& k : keys) SFS_TRY(store.fs_tree().remove(k));
  SFS_TRY(remove_speculative(store, ino));  // its speculative space went with its extents,
  SFS_TRY(remove_pending_truncate(store, ino));  // and so did whatever lay past its EOF
  store.superblock().inode_count--;
  return {};
}

}  // namespace stablefs
