#include "fs/inode/data_release.h"

#include "fs/inode/checksum_store.h"
#include "fs/inode/extent_map.h"

namespace stablefs {

Status release_data_blocks(MetadataStore& store, uint64_t dev_block, uint64_t nblocks) {
  const Superblock& sb = store.superblock();
  if (nblocks == 0 || dev_block < sb.data_start || dev_block >= sb.total_blocks - 1 ||
      nblocks > sb.total_blocks - 1 - dev_block)
    return Status::error(EUCLEAN, "extent at block " + std::to_string(dev_block) + " of " + std::to_string(nblocks) +
                                      " blocks lies outside the data area");
  SFS_TRY(store.allocator().free(Extent{dev_block, nblocks}, Reuse::kAfterCommit));
  if (!sb.data_checksums()) return {};
  return ChecksumStore(store.csum_tree()).drop(dev_block, nblocks);
}

Result<uint64_t> unmap_file_blocks(MetadataStore& store, uint64_t ino, uint64_t file_block, uint64_t nblocks) {
  SFS_ASSIGN(auto displaced, ExtentMap(store, ino).replace(file_block, nblocks, std::nullopt));
  uint64_t released = 0;
  for (const DisplacedPiece& d : displaced) {
    SFS_TRY(release_data_blocks(store, d.extent.dev_block, d.extent.nblocks));
    released += d.extent.nblocks;
  }
  return released;
}

}  // namespace stablefs
