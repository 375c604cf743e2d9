// InodeList: an on-disk list of inodes — items (kOrphanListObjectid, item_type, ino) in the
// filesystem tree — with a superblock feature bit that is set exactly while the list is not
// empty, in the same transactions. The orphan list (fs/inode/orphan_list.h) and the
// speculative-preallocation list (fs/inode/speculative_list.h) are the two instances.
// Stateless over the store. REQUIRES: the metadata lock; add/remove inside an operation.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

struct InodeList {
  uint8_t item_type;
  uint64_t Superblock::*feature_field;  // &Superblock::incompat or &Superblock::ro_compat
  uint64_t feature_bit;

  Key key(uint64_t ino) const { return {kOrphanListObjectid, item_type, ino}; }
  // Puts ino on the list with value and sets the bit. Already listed: EEXIST, or with
  // if_absent nothing changes but the bit.
  Status add(MetadataStore& store, uint64_t ino, std::span<const uint8_t> value, bool if_absent) const {
    bool listed = false;
    if (if_absent) {
      SFS_ASSIGN(listed, store.fs_tree().lookup(key(ino), nullptr));
    }
    if (!listed) SFS_TRY(store.fs_tree().insert(key(ino), value));
    store.superblock().*feature_field |= feature_bit;
    return {};
  }
  // Takes ino off the list and clears the bit when the list is left empty. Not listed:
  // ENOENT, or with if_present nothing changes but the bit.
  Status remove(MetadataStore& store, uint64_t ino, bool if_present) const {
    bool listed = true;
    if (if_present) {
      SFS_ASSIGN(listed, store.fs_tree().lookup(key(ino), nullptr));
    }
    if (listed) SFS_TRY(store.fs_tree().remove(key(ino)));
    SFS_ASSIGN(const bool any, store.fs_tree().contains_any(key(0), key(~0ull)));
    if (!any) store.superblock().*feature_field &= ~feature_bit;
    return {};
  }
  // The listed inodes, ascending, of a list whose entries carry no value. EUCLEAN naming
  // list_name if one does.
  Result<std::vector<uint64_t>> valueless_entries(MetadataStore& store, const char* list_name) const {
    std::vector<uint64_t> out;
    Status bad;
    SFS_TRY(store.fs_tree().scan(key(0), key(~0ull), [&](const Key& k, std::span<const uint8_t> v) {
      if (!v.empty()) {
        bad = Status::error(EUCLEAN, std::string(list_name) + ": entry for inode " + std::to_string(k.offset) + " has a value");
        return false;
      }
      out.push_back(k.offset);
      return true;
    }));
    SFS_TRY(bad);
    return out;
  }
};

}  // namespace stablefs
