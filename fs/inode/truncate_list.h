// The pending-truncate list: regular files whose new, smaller size has committed while blocks
// past it may still be mapped. Shrinking a file commits the size first and frees what lies
// past it in later bounded steps (a file of any size fits the journal that way); a crash, or
// a commit by anyone else, can land between them. Without the list the next mount would keep
// those blocks mapped past EOF, and growing the file again would expose their old data.
//
// Each entry is an item (kOrphanListObjectid, kItemTruncate, ino) with an empty value
// (docs/on-disk-format.md, "Pending-truncate list"). An inode enters the list in the operation
// that commits its smaller size and leaves it in the operation after the last step has freed
// everything past EOF, or when it is freed. The superblock's ro_compat bit kRoCompatTruncates
// is set exactly while the list is not empty.
//
// Stateless functions over the store. REQUIRES for every function: the filesystem's metadata
// lock; add/remove inside an operation, finish_truncate outside one (it runs its own).
#pragma once

#include <cstdint>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

inline Key truncate_key(uint64_t ino) { return {kOrphanListObjectid, kItemTruncate, ino}; }

// Lists ino (if it is not listed yet) and sets the superblock bit.
Status add_pending_truncate(MetadataStore& store, uint64_t ino);
// Takes ino off the list if it is there; clears the bit when the list is left empty.
Status remove_pending_truncate(MetadataStore& store, uint64_t ino);
// The listed inodes, ascending. EUCLEAN if an entry has a value.
Result<std::vector<uint64_t>> list_pending_truncates(MetadataStore& store);

// Frees every block of ino past its EOF block — written, unwritten and speculative alike, as
// the truncate would have — in bounded steps, each its own operation, then takes ino off the
// list in a last one. A missing inode only loses its entry. For mount and fsck: REQUIRES that
// nothing else uses ino (no I/O in flight, no range locks); NOT inside an operation. On error
// ino stays listed. Returns the blocks freed.
Result<uint64_t> finish_truncate(MetadataStore& store, uint64_t ino);

}  // namespace stablefs
