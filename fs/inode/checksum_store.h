// ChecksumStore: the per-block XXH3-64 checksums of file data, kept in the checksum tree.
//
// Checksums are keyed by device block (not by file), in groups of kCsumGroupBlocks, so the
// data path can look a block's checksum up from its device address alone and a remap only
// moves ownership. Reads need the metadata lock; changes must run inside a MetadataStore
// operation (they join the running transaction). The store borrows the tree; it owns nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "fs/meta/btree.h"

namespace stablefs {

class ChecksumStore {
 public:
  explicit ChecksumStore(BTree& tree) : tree_(tree) {}

  // The checksums of [dev_block, dev_block + out.size()): out[i] is empty where none is stored.
  Status get(uint64_t dev_block, std::span<std::optional<uint64_t>> out);
  // Records sums[i] as the checksum of dev_block + i, replacing any there.
  Status set(uint64_t dev_block, std::span<const uint64_t> sums);
  // Forgets the checksums of [dev_block, dev_block + nblocks).
  Status drop(uint64_t dev_block, uint64_t nblocks);

 private:
  BTree& tree_;
};

}  // namespace stablefs
