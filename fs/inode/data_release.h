// Releasing file data blocks: frees them and drops their checksums, in the running
// transaction. Shared by unlink/rmdir now and by truncate/punch/remap in the data engine.
#pragma once

#include <cstdint>

#include "fs/meta/metadata_store.h"

namespace stablefs {

// Frees [dev_block, dev_block + nblocks) for reuse after the transaction commits and removes
// the blocks' checksums. REQUIRES: inside an operation (MetadataStore::begin_operation).
Status release_data_blocks(MetadataStore& store, uint64_t dev_block, uint64_t nblocks);

// Makes [file_block, +nblocks) of ino a hole and releases the blocks that backed it (punch,
// truncate, and finishing an interrupted truncate). Returns how many were released; the
// caller lowers the inode's block count. REQUIRES: inside an operation.
Result<uint64_t> unmap_file_blocks(MetadataStore& store, uint64_t ino, uint64_t file_block, uint64_t nblocks);

}  // namespace stablefs
