// fsck: checks every invariant of a stablefs filesystem and, when asked, repairs what can be
// repaired safely.
//
// Checked: both superblock copies; the journal; every B+tree node (checksums, layout, key
// order, balance); every item's encoding; each allocated block owned exactly once and no
// owned block free (bitmaps against the trees and extents); link counts; directory <-> inode
// consistency (entries point at live inodes of the recorded type, directory parent pointers);
// extents non-overlapping and inside the device; sizes and block counts; data checksums only
// for blocks that hold written file data; summary counters in the superblock.
// Orphans (inodes unlinked while in use, nlink 0, on the orphan list) are legal, not leaks;
// repair mode frees them as mount would. An orphan entry naming a missing inode, another
// generation or an inode with links is a problem.
// Repairs (repair mode): superblock copies, bitmaps, counters, link counts, parent pointers,
// entries that point at missing inodes, entry types, block counts, stale orphan entries and
// the orphan feature bit. Damaged tree nodes,
// doubly-owned blocks and unreachable inodes are reported and left alone.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bounce/block_device.h"

namespace stablefs {

class MetadataStore;

struct FsckOptions {
  bool repair = false;  // false: never writes to the device (journal replayed in memory)
  std::function<void(const std::string&)> on_problem;  // called for each problem as found
  // Check mode only: called with the open store once the checks are done (its cache holds the
  // metadata they read), before it is closed. Not called when the store cannot be opened.
  std::function<void(MetadataStore&)> with_store;
};

// fsck(8) exit codes.
inline constexpr int kFsckClean = 0;
inline constexpr int kFsckCorrected = 1;
inline constexpr int kFsckUncorrected = 4;
inline constexpr int kFsckOperationalError = 8;

// A metadata block that failed its checks: which block, what it holds, and the problem line
// (also in FsckReport::problems).
struct DamagedMetadataBlock {
  uint64_t block = 0;
  std::string holds;  // "filesystem tree node", "checksum tree node", "primary superblock", ...
  std::string problem;
};

struct FsckReport {
  std::vector<std::string> problems;   // one line each, naming the inode or block
  std::vector<DamagedMetadataBlock> damaged_blocks;  // the problems that are one block's damage
  std::vector<std::string> corrected;  // the subset of problems repaired
  uint64_t inodes = 0, directories = 0, regular_files = 0, symlinks = 0, specials = 0;
  uint64_t tree_blocks = 0, data_blocks = 0, free_blocks = 0, total_blocks = 0;
  uint64_t replayed_transactions = 0;
  uint64_t orphans = 0;        // inodes on the orphan list (legal; mount frees them)
  uint64_t orphans_freed = 0;  // of those, freed by repair mode
  uint64_t truncates_pending = 0;   // files on the pending-truncate list (legal; mount finishes them)
  uint64_t truncates_finished = 0;  // truncates repair mode finished (those and any it found missing)
  std::string fatal;  // operational error (device unreadable, no superblock): exit 8
  int exit_code() const;
};

FsckReport run_fsck(BlockDevice& dev, const FsckOptions& opts);

}  // namespace stablefs
