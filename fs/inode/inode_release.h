// Releasing an inode's storage: its data blocks (with their checksums) and its items.
//
// Shared by the namespace (the last link of an unused inode goes), the orphan list (the last
// user of an unlinked inode goes, or mount finds it after a crash) and fsck's repairs.
// REQUIRES for every function: the filesystem's metadata lock, inside an operation
// (MetadataStore::begin_operation); the caller ends the operation.
#pragma once

#include <cstdint>

#include "fs/meta/metadata_store.h"

namespace stablefs {

// Frees at most max_extents of ino's extents, lowest file block first: their blocks and
// checksums are released, their items removed and the inode's block count lowered, so that
// every intermediate state is consistent (a crash between steps leaves a smaller file).
// Returns true when ino has no extent left. ENOENT if the inode does not exist.
Result<bool> release_inode_extents(MetadataStore& store, uint64_t ino, size_t max_extents);

// Removes every item keyed by ino — inode record, extents (releasing their blocks), xattrs,
// symlink chunks — and its speculative-list and pending-truncate entries, and counts the inode gone in the superblock.
Status remove_inode_items(MetadataStore& store, uint64_t ino);

}  // namespace stablefs
