// The speculative-preallocation list: inodes that may hold speculative extents past EOF
// (kExtentSpeculative, fs/data/file_mapper.h), kept on disk so that a crash cannot strand that
// space: a read-write mount trims every listed inode (FileSpace::trim_speculative).
//
// Each entry is an item (kOrphanListObjectid, kItemSpeculative, ino) with an empty value
// (docs/on-disk-format.md). An inode enters the list in the operation that first gives it
// speculative space and leaves it when that space is trimmed or the inode is freed. The
// superblock's incompat bit kIncompatSpeculative is set exactly while the list is not empty.
//
// Stateless functions over the store. REQUIRES for every function: the filesystem's metadata
// lock; add/remove inside an operation.
#pragma once

#include <cstdint>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

inline Key speculative_key(uint64_t ino) { return {kOrphanListObjectid, kItemSpeculative, ino}; }

// Lists ino (if it is not listed yet) and sets the superblock bit.
Status add_speculative(MetadataStore& store, uint64_t ino);
// Takes ino off the list if it is there; clears the bit when the list is left empty.
Status remove_speculative(MetadataStore& store, uint64_t ino);
// The listed inodes, ascending. EUCLEAN if an entry has a value.
Result<std::vector<uint64_t>> list_speculative(MetadataStore& store);

}  // namespace stablefs
