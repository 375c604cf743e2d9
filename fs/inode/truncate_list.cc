#include "fs/inode/truncate_list.h"

#include <sys/stat.h>

#include <algorithm>
#include <optional>

#include "fs/format/format.h"
#include "fs/inode/data_release.h"
#include "fs/inode/extent_map.h"
#include "fs/inode/inode_list.h"

namespace stablefs {
namespace {

constexpr InodeList kTruncateList{kItemTruncate, &Superblock::ro_compat, kRoCompatTruncates};

// What one step of finish_truncate frees at most, and the metadata blocks it may dirty: the
// extent items' leaves, a few bitmap blocks and the checksum groups of the freed blocks
// (2048 blocks span at most 33 groups of 64).
constexpr size_t kPiecesPerStep = 32;
constexpr uint64_t kBlocksPerStep = 2048;
constexpr size_t kStepOpBlocks = 128;

struct Piece {
  uint64_t file_block;
  uint64_t nblocks;
};

// One step: frees up to the bounds above of what ino maps past its EOF block. Returns true
// when nothing is mapped past it any more (or ino is gone or not a regular file).
Result<bool> free_step_past_eof(MetadataStore& store, uint64_t ino, uint64_t& freed) {
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool found, store.fs_tree().lookup({ino, kItemInode, 0}, &v));
  if (!found) return true;
  SFS_ASSIGN(InodeRecord rec, InodeRecord::decode(v, ino));
  if (!S_ISREG(rec.mode)) return true;
  const uint64_t bs = store.superblock().block_size;
  const uint64_t eof_block = rec.size / bs + (rec.size % bs != 0);
  ExtentMap extents(store, ino);
  std::vector<Piece> pieces;
  uint64_t budget = kBlocksPerStep;
  bool more = false;
  SFS_TRY(extents.walk(eof_block, [&](const MappedPiece& p) {
    if (!p.extent) return true;
    if (pieces.size() == kPiecesPerStep || budget == 0) {
      more = true;
      return false;
    }
    const uint64_t n = std::min(p.nblocks, budget);
    pieces.push_back({p.file_block, n});
    budget -= n;
    if (n < p.nblocks) more = true;
    return n == p.nblocks;
  }));
  if (pieces.empty()) return true;
  for (const Piece& p : pieces) {
    SFS_ASSIGN(const uint64_t released, unmap_file_blocks(store, ino, p.file_block, p.nblocks));
    rec.blocks = rec.blocks >= released ? rec.blocks - released : 0;
    freed += released;
  }
  SFS_TRY(store.fs_tree().put({ino, kItemInode, 0}, rec.encode()));
  return !more;
}

}  // namespace

Status add_pending_truncate(MetadataStore& store, uint64_t ino) { return kTruncateList.add(store, ino, {}, true); }

Status remove_pending_truncate(MetadataStore& store, uint64_t ino) { return kTruncateList.remove(store, ino, true); }

Result<std::vector<uint64_t>> list_pending_truncates(MetadataStore& store) {
  return kTruncateList.valueless_entries(store, "pending-truncate list");
}

Result<uint64_t> finish_truncate(MetadataStore& store, uint64_t ino) {
  uint64_t freed = 0;
  for (;;) {
    SFS_ASSIGN(bool done, in_operation(store, kStepOpBlocks, [&] { return free_step_past_eof(store, ino, freed); }));
    if (done) break;
  }
  SFS_TRY(in_operation(store, 8, [&] { return remove_pending_truncate(store, ino); }));
  return freed;
}

}  // namespace stablefs
