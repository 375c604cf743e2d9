// The orphan list: inodes whose last link went while they were still in use (open, or held by
// the kernel), kept on disk so that a crash cannot leak them.
//
// Each orphan is an item (kOrphanListObjectid, kItemOrphan, ino) -> OrphanRecord in the
// filesystem tree (docs/on-disk-format.md, "Orphan list"). An inode enters the list in the
// same transaction that removes its last link (it keeps nlink 0, its data and its items) and
// leaves it in the transaction that removes its last items. The superblock's ro_compat bit
// kRoCompatOrphans is set exactly while the list is not empty, in the same transactions.
//
// These are stateless functions over the store; the Filesystem tracks who uses what.
// REQUIRES for every function: the filesystem's metadata lock.
#pragma once

#include <cstdint>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

inline Key orphan_key(uint64_t ino) { return {kOrphanListObjectid, kItemOrphan, ino}; }

// Puts ino on the list and sets the superblock bit. REQUIRES: inside an operation.
Status add_orphan(MetadataStore& store, uint64_t ino, uint64_t generation);

// Takes ino off the list (only the entry) and clears the superblock bit when the list is left
// empty. REQUIRES: inside an operation.
Status remove_orphan(MetadataStore& store, uint64_t ino);

struct Orphan {
  uint64_t ino = 0;
  OrphanRecord rec;
};
// The list, in inode order. EUCLEAN if an item does not decode.
Result<std::vector<Orphan>> list_orphans(MetadataStore& store);

enum class Reclaimed {
  kFreed,  // the inode and everything it owned are gone, and so is its entry
  kStale,  // the entry named no inode of that generation with nlink 0: only the entry went
  kAbsent, // ino was not on the list
};
// Frees the orphan ino: its data in bounded steps (each its own operation, so a file of any
// size fits the journal; a crash between steps leaves a smaller orphan that the next mount
// finishes), then its items and its entry together in a last operation. An entry whose inode
// is missing, has links or another generation is stale: it is removed and the inode left
// alone. REQUIRES: NOT inside an operation (this runs its own); the caller guarantees nobody
// uses ino any more. On error the orphan stays listed (possibly smaller).
Result<Reclaimed> reclaim_orphan(MetadataStore& store, uint64_t ino);

}  // namespace stablefs
