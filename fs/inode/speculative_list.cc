#include "fs/inode/speculative_list.h"

#include "fs/format/format.h"
#include "fs/inode/inode_list.h"

namespace stablefs {

namespace {

constexpr InodeList kSpeculativeList{kItemSpeculative, &Superblock::incompat, kIncompatSpeculative};

}  // namespace

Status add_speculative(MetadataStore& store, uint64_t ino) { return kSpeculativeList.add(store, ino, {}, true); }

Status remove_speculative(MetadataStore& store, uint64_t ino) { return kSpeculativeList.remove(store, ino, true); }

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
