// ExtentMap: the file-block → device-block map of one inode, as extent items in the
// filesystem tree (key (ino, kItemExtent, first file block)).
//
// find() answers what backs a file block; replace() is the one mutator: it makes
// [file_block, +nblocks) map to a new extent or to a hole, splitting the extents it overlaps
// and returning the pieces it displaced (the caller frees them or, for unwritten→written
// conversion, keeps them). A new extent is merged with a neighbour that continues it in the
// file and on the device with the same flags, so an extent may start before file_block. REQUIRES: the metadata lock; replace() inside a store operation.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

struct MappedPiece {
  uint64_t file_block = 0;
  uint64_t nblocks = 0;               // up to the next extent boundary (a hole: to the next extent, or ~0)
  std::optional<ExtentRecord> extent;  // dev_block already advanced to file_block; nblocks as above
};

// A displaced piece of an old extent: the file blocks it covered and what backed them.
struct DisplacedPiece {
  uint64_t file_block = 0;
  ExtentRecord extent;
};

class ExtentMap {
 public:
  ExtentMap(MetadataStore& store, uint64_t ino) : store_(store), ino_(ino) {}

  Result<MappedPiece> find(uint64_t file_block);
  // Calls fn with each piece (extent or hole, as find() gives them) from file_block on, in file
  // order, until fn returns false or the hole that ends the file has been given.
  Status walk(uint64_t file_block, const std::function<bool(const MappedPiece&)>& fn);
  Result<std::vector<DisplacedPiece>> replace(uint64_t file_block, uint64_t nblocks, std::optional<ExtentRecord> with);
  // Every extent, in file order (fsck, SEEK_DATA, tests).
  Result<std::vector<DisplacedPiece>> all();
  // The device block just past the extent that ends at or before file_block (allocation goal).
  Result<uint64_t> goal_before(uint64_t file_block);

 private:
  MetadataStore& store_;
  uint64_t ino_;
};

}  // namespace stablefs
