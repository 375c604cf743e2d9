#include "fs/data_release.h"

#include "fs/fs_items.h"

namespace stablefs {

Status release_data_blocks(MetadataStore& store, uint64_t dev_block, uint64_t nblocks) {
  const Superblock& sb = store.superblock();
  if (nblocks == 0 || dev_block < sb.data_start || dev_block >= sb.total_blocks - 1 ||
      nblocks > sb.total_blocks - 1 - dev_block)
    return Status::error(EUCLEAN, "extent at block " + std::to_string(dev_block) + " of " + std::to_string(nblocks) +
                                      " blocks lies outside the data area");
  SFS_TRY(store.allocator().free(Extent{dev_block, nblocks}, Reuse::kAfterCommit));
  if (!sb.data_checksums()) return {};
  BTree& csums = store.csum_tree();
  const uint64_t end = dev_block + nblocks;
  for (uint64_t group = dev_block / kCsumGroupBlocks; group * kCsumGroupBlocks < end; ++group) {
    Key key{0, kItemCsumGroup, group};
    std::vector<uint8_t> v;
    SFS_ASSIGN(bool found, csums.lookup(key, &v));
    if (!found) continue;
    SFS_ASSIGN(CsumGroup g, CsumGroup::decode(v, key));
    const uint64_t first = group * kCsumGroupBlocks;
    for (uint64_t i = 0; i < kCsumGroupBlocks; ++i)
      if (first + i >= dev_block && first + i < end) g.present &= ~(1ull << i);
    if (g.present == 0) SFS_TRY(csums.remove(key));
    else SFS_TRY(csums.put(key, g.encode()));
  }
  return {};
}

}  // namespace stablefs
