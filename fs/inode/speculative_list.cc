#include "fs/inode/speculative_list.h"

#include "fs/format/format.h"

namespace stablefs {

Status add_speculative(MetadataStore& store, uint64_t ino) {
  SFS_ASSIGN(const bool listed, store.fs_tree().lookup(speculative_key(ino), nullptr));
  if (!listed) SFS_TRY(store.fs_tree().insert(speculative_key(ino), {}));
  store.superblock().incompat |= kIncompatSpeculative;
  return {};
}

Status remove_speculative(MetadataStore& store, uint64_t ino) {
  SFS_ASSIGN(const bool listed, store.fs_tree().lookup(speculative_key(ino), nullptr));
  if (listed) SFS_TRY(store.fs_tree().remove(speculative_key(ino)));
  SFS_ASSIGN(const bool any, store.fs_tree().contains_any(speculative_key(0), speculative_key(~0ull)));
  if (!any) store.superblock().incompat &= ~kIncompatSpeculative;
  return {};
}

Result<std::vector<uint64_t>> list_speculative(MetadataStore& store) {
  std::vector<uint64_t> out;
  Status bad;
  SFS_TRY(store.fs_tree().scan(speculative_key(0), speculative_key(~0ull), [&](const Key& k, std::span<const uint8_t> v) {
    if (!v.empty()) {
      bad = Status::error(EUCLEAN, "speculative list: entry for inode " + std::to_string(k.offset) + " has a value");
      return false;
    }
    out.push_back(k.offset);
    return true;
  }));
  SFS_TRY(bad);
  return out;
}

}  // namespace stablefs
