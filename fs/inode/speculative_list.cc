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
  return kSpeculativeList.valueless_entries(store, "speculative list");
}

}  // namespace stablefs
