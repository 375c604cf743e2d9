#include "fs/inode/extent_map.h"

#include "fs/meta/item_scan.h"

namespace stablefs {

Result<MappedPiece> ExtentMap::find(uint64_t file_block) {
  BTree& tree = store_.fs_tree();
  Key found;
  std::vector<uint8_t> v;
  MappedPiece piece;
  piece.file_block = file_block;
  SFS_ASSIGN(bool have, tree.lookup_le({ino_, kItemExtent, file_block}, &found, &v));
  if (have && found.objectid == ino_ && found.type == kItemExtent) {
    SFS_ASSIGN(ExtentRecord e, ExtentRecord::decode(v, found));
    if (found.offset + e.nblocks > file_block) {
      uint64_t skip = file_block - found.offset;
      piece.nblocks = e.nblocks - skip;
      e.dev_block += skip;
      e.nblocks -= skip;
      piece.extent = e;
      return piece;
    }
  }
  // A hole: it runs to the next extent.
  piece.nblocks = ~0ull - file_block;
  SFS_TRY(tree.scan({ino_, kItemExtent, file_block}, {ino_, kItemExtent, ~0ull}, [&](const Key& k, std::span<const uint8_t>) {
    piece.nblocks = k.offset - file_block;
    return false;
  }));
  return piece;
}

Status ExtentMap::walk(uint64_t file_block, const std::function<bool(const MappedPiece&)>& fn) {
  for (uint64_t fb = file_block;;) {
    SFS_ASSIGN(MappedPiece piece, find(fb));
    if (!fn(piece)) return {};
    if (piece.nblocks >= ~0ull - fb) return {};  // it ran to the end of the address space
    fb += piece.nblocks;
  }
}

Result<std::vector<DisplacedPiece>> ExtentMap::replace(uint64_t file_block, uint64_t nblocks,
                                                         std::optional<ExtentRecord> with) {
  BTree& tree = store_.fs_tree();
  const uint64_t end = file_block + nblocks;
  std::vector<std::pair<Key, ExtentRecord>> overlapping;
  // The extent starting before the range may reach into it.
  Key found;
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool have, tree.lookup_le({ino_, kItemExtent, file_block}, &found, &v));
  if (have && found.objectid == ino_ && found.type == kItemExtent && found.offset < file_block) {
    SFS_ASSIGN(ExtentRecord e, ExtentRecord::decode(v, found));
    if (found.offset + e.nblocks > file_block) overlapping.emplace_back(found, e);
  }
  if (end > file_block) {
    SFS_TRY(scan_items<ExtentRecord>(tree, {ino_, kItemExtent, file_block}, {ino_, kItemExtent, end - 1},
                                     [&](const Key& k, const ExtentRecord& e) {
                                       overlapping.emplace_back(k, e);
                                       return true;
                                     }));
  }
  std::vector<DisplacedPiece> displaced;
  for (auto& [key, e] : overlapping) {
    const uint64_t e_start = key.offset, e_end = key.offset + e.nblocks;
    SFS_TRY(tree.remove(key));
    if (e_start < file_block) {  // keep the head
      ExtentRecord head = e;
      head.nblocks = file_block - e_start;
      SFS_TRY(tree.insert({ino_, kItemExtent, e_start}, head.encode()));
    }
    if (e_end > end) {  // keep the tail
      ExtentRecord tail = e;
      tail.dev_block += end - e_start;
      tail.nblocks = e_end - end;
      SFS_TRY(tree.insert({ino_, kItemExtent, end}, tail.encode()));
    }
    const uint64_t cut_start = std::max(e_start, file_block), cut_end = std::min(e_end, end);
    ExtentRecord cut = e;
    cut.dev_block += cut_start - e_start;
    cut.nblocks = cut_end - cut_start;
    displaced.push_back({cut_start, cut});
  }
  if (with) {
    // Merge with a neighbour that continues it on the device with the same flags, so
    // appends and sequential rewrites keep one extent instead of one per write.
    uint64_t start = file_block;
    ExtentRecord merged = *with;
    if (start > 0) {
      SFS_ASSIGN(bool have_left, tree.lookup_le({ino_, kItemExtent, start - 1}, &found, &v));
      if (have_left && found.objectid == ino_ && found.type == kItemExtent) {
        SFS_ASSIGN(ExtentRecord left, ExtentRecord::decode(v, found));
        if (found.offset + left.nblocks == start && left.dev_block + left.nblocks == merged.dev_block &&
            left.flags == merged.flags) {
          SFS_TRY(tree.remove(found));
          start = found.offset;
          merged.dev_block = left.dev_block;
          merged.nblocks += left.nblocks;
        }
      }
    }
    SFS_ASSIGN(bool have_right, tree.lookup_le({ino_, kItemExtent, end}, &found, &v));
    if (have_right && found.objectid == ino_ && found.type == kItemExtent && found.offset == end) {
      SFS_ASSIGN(ExtentRecord right, ExtentRecord::decode(v, found));
      if (with->dev_block + with->nblocks == right.dev_block && right.flags == merged.flags) {
        SFS_TRY(tree.remove(found));
        merged.nblocks += right.nblocks;
      }
    }
    SFS_TRY(tree.insert({ino_, kItemExtent, start}, merged.encode()));
  }
  return displaced;
}

Result<std::vector<DisplacedPiece>> ExtentMap::all() {
  std::vector<DisplacedPiece> out;
  SFS_TRY(scan_items<ExtentRecord>(store_.fs_tree(), {ino_, kItemExtent, 0}, {ino_, kItemExtent, ~0ull},
                                   [&](const Key& k, const ExtentRecord& e) {
                                     out.push_back({k.offset, e});
                                     return true;
                                   }));
  return out;
}

Result<uint64_t> ExtentMap::goal_before(uint64_t file_block) {
  Key found;
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool have, store_.fs_tree().lookup_le({ino_, kItemExtent, file_block}, &found, &v));
  if (!have || found.objectid != ino_ || found.type != kItemExtent) return uint64_t(0);
  SFS_ASSIGN(ExtentRecord e, ExtentRecord::decode(v, found));
  return e.dev_block + e.nblocks + (file_block > found.offset + e.nblocks ? file_block - found.offset - e.nblocks : 0);
}

}  // namespace stablefs
