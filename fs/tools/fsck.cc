#include "fs/tools/fsck.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <type_traits>
#include <unordered_map>

#include "bounce/aligned_buffer.h"
#include "fs/namespace/filesystem.h"
#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"
#include "fs/inode/orphan_list.h"
#include "fs/inode/speculative_list.h"
#include "fs/inode/truncate_list.h"
#include "fs/format/superblock_io.h"

namespace stablefs {

int FsckReport::exit_code() const {
  if (!fatal.empty()) return kFsckOperationalError;
  if (problems.empty()) return kFsckClean;
  return corrected.size() == problems.size() ? kFsckCorrected : kFsckUncorrected;
}

namespace {

struct DirentFound {
  uint64_t dir;
  uint64_t slot;
  DirentRecord rec;
};
struct ExtentFound {
  uint64_t file_block;
  ExtentRecord rec;
};

bool valid_file_type(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO: case S_IFSOCK: case S_IFCHR: case S_IFBLK: return true;
  }
  return false;
}

std::string ino_name(uint64_t ino) { return "inode " + std::to_string(ino); }

// One fsck pass over an open store. Problems are recorded as they are found; repairs are
// applied inside one metadata operation per kind.
class FsckRun {
 public:
  FsckRun(MetadataStore& store, const FsckOptions& opts, FsckReport& report)
      : store_(store), sb_(store.superblock()), opts_(opts), report_(report), owned_(sb_.total_blocks, 0) {}

  void run() {
    claim_reserved();
    walk_trees();
    check_inodes();
    check_checksums();
    check_bitmaps();
    check_counters();
    free_orphans();
    finish_truncates();
  }

 private:
  void problem(const std::string& line) {
    report_.problems.push_back(line);
    if (opts_.on_problem) opts_.on_problem(line);
  }
  void corrected(const std::string& line) { report_.corrected.push_back(line); }
  // Runs fix inside a metadata operation and records the problem line as corrected if it worked.
  void repair(const std::string& line, const std::function<Status()>& fix) {
    if (!opts_.repair) return;
    Status st = store_.begin_operation(64);
    if (st.ok()) st = store_.end_operation(fix());
    if (st.ok()) corrected(line);
    else problem("repair failed: " + st.message());
  }

  // Marks block owned by owner (a string, or a callable giving it: built only for a problem).
  template <typename Owner>
  void claim(uint64_t block, const Owner& owner) {
    auto name = [&]() -> std::string {
      if constexpr (std::is_invocable_v<Owner>) return owner();
      else return owner;
    };
    if (block >= owned_.size()) {
      problem("block " + std::to_string(block) + " (" + name() + ") is beyond the end of the filesystem");
      return;
    }
    if (owned_[block]) {
      problem("block " + std::to_string(block) + " (" + name() + ") is also owned by something else");
      double_owned_ = true;
      return;
    }
    owned_[block] = 1;
  }

  void claim_reserved() {
    for (uint64_t b = 0; b < sb_.data_start; ++b) owned_[b] = 1;
    owned_[sb_.total_blocks - 1] = 1;
  }

  void walk_trees() {
    const uint64_t end = sb_.total_blocks - 1;
    size_t before = report_.problems.size();
    auto damaged = [&](const char* holds) {
      return [this, holds](uint64_t b) { report_.damaged_blocks.push_back({b, holds, report_.problems.back()}); };
    };
    store_.fs_tree().check(sb_.data_start, end,
                           {[&](const std::string& p) { problem("filesystem tree: " + p); },
                            [&](uint64_t b) {
                              report_.tree_blocks++;
                              claim(b, "filesystem tree node");
                            },
                            [&](const Key& k, std::span<const uint8_t> v) { fs_item(k, v); },
                            damaged("filesystem tree node")});
    store_.csum_tree().check(sb_.data_start, end,
                             {[&](const std::string& p) { problem("checksum tree: " + p); },
                              [&](uint64_t b) {
                                report_.tree_blocks++;
                                claim(b, "checksum tree node");
                              },
                              [&](const Key& k, std::span<const uint8_t> v) { csum_item(k, v); },
                              damaged("checksum tree node")});
    trees_damaged_ = report_.problems.size() != before;
  }

  void fs_item(const Key& k, std::span<const uint8_t> v) {
    switch (k.type) {
      case kItemInode: {
        auto rec = InodeRecord::decode(v, k.objectid);
        if (!rec.ok()) return problem(rec.status().message());
        if (k.offset != 0) return problem(ino_name(k.objectid) + ": inode item has offset " + std::to_string(k.offset));
        inodes_[k.objectid] = *rec;
        return;
      }
      case kItemDirent: {
        auto rec = DirentRecord::decode(v, k);
        if (!rec.ok()) return problem(ino_name(k.objectid) + ": " + rec.status().message());
        if (name_slot_base(rec->name) != (k.offset & ~(kSlotsPerHash - 1)))
          return problem(ino_name(k.objectid) + ": directory entry '" + rec->name + "' is filed under the wrong hash");
        dirents_.push_back({k.objectid, k.offset, std::move(rec).value()});
        return;
      }
      case kItemExtent: {
        auto rec = ExtentRecord::decode(v, k);
        if (!rec.ok()) return problem(ino_name(k.objectid) + ": " + rec.status().message());
        extents_[k.objectid].push_back({k.offset, *rec});
        return;
      }
      case kItemXattr: {
        auto rec = XattrRecord::decode(v, k);
        if (!rec.ok()) return problem(ino_name(k.objectid) + ": " + rec.status().message());
        if (name_slot_base(rec->name) != (k.offset & ~(kSlotsPerHash - 1)))
          return problem(ino_name(k.objectid) + ": xattr '" + rec->name + "' is filed under the wrong hash");
        xattr_owners_.push_back(k.objectid);
        if (rec->value_id) chunked_xattrs_[{k.objectid, rec->value_id}] = {rec->name, rec->chunked_size};
        return;
      }
      case kItemXattrChunk: {
        ChunkedValue& c = xattr_chunks_[{k.objectid, k.offset >> kXattrChunkIndexBits}];
        const uint64_t index = k.offset & (kXattrMaxChunks - 1);
        if (index != c.chunks)
          problem(ino_name(k.objectid) + ": xattr value chunk " + std::to_string(index) + " is out of sequence");
        c.chunks++;
        c.bytes += v.size();
        return;
      }
      case kItemOrphan: {
        auto rec = OrphanRecord::decode(v, k);
        if (!rec.ok()) return problem("orphan list: " + rec.status().message());
        orphan_entries_[k.offset] = *rec;
        return;
      }
      case kItemSpeculative:
        if (k.objectid != kOrphanListObjectid || !v.empty())
          return problem("speculative list: malformed entry " + k.to_string());
        speculative_entries_.insert(k.offset);
        return;
      case kItemTruncate:
        if (k.objectid != kOrphanListObjectid || !v.empty())
          return problem("pending-truncate list: malformed entry " + k.to_string());
        truncate_entries_.insert(k.offset);
        return;
      case kItemScrubState: {
        auto rec = ScrubStateRecord::decode(v, k);
        if (!rec.ok()) return problem("scrub state: " + rec.status().message());
        return;
      }
      case kItemSymlink: {
        auto& s = symlinks_[k.objectid];
        if (k.offset != s.chunks) problem(ino_name(k.objectid) + ": symlink chunk " + std::to_string(k.offset) + " is out of sequence");
        s.chunks++;
        s.bytes += v.size();
        return;
      }
      default:
        problem(ino_name(k.objectid) + ": unknown item type " + std::to_string(k.type) + " at " + k.to_string());
    }
  }

  void csum_item(const Key& k, std::span<const uint8_t> v) {
    if (k.type != kItemCsumGroup || k.objectid != 0) return problem("checksum tree: unexpected item " + k.to_string());
    auto g = CsumGroup::decode(v, k);
    if (!g.ok()) return problem("checksum tree: " + g.status().message());
    if (g->present == 0) return problem("checksum tree: empty checksum group " + k.to_string());
    if (k.offset > (sb_.total_blocks - 1) / kCsumGroupBlocks)
      return problem("checksum tree: checksum group " + std::to_string(k.offset) + " is beyond the device");
    csum_groups_[k.offset] = *g;
  }

  void check_inodes() {
    auto root = inodes_.find(kRootIno);
    if (root == inodes_.end() || !S_ISDIR(root->second.mode)) problem("root directory (inode 1) is missing or not a directory");

    std::unordered_map<uint64_t, uint64_t> refs, subdirs;
    std::unordered_map<uint64_t, uint64_t> dir_parent;  // directory -> the directory holding its entry
    for (const DirentFound& d : dirents_) {
      std::string where = ino_name(d.dir) + ": entry '" + d.rec.name + "'";
      auto dir = inodes_.find(d.dir);
      if (dir == inodes_.end() || !S_ISDIR(dir->second.mode)) {
        problem(where + " belongs to a directory that does not exist");
        continue;
      }
      auto target = inodes_.find(d.rec.ino);
      if (target == inodes_.end()) {
        std::string line = where + " points to missing " + ino_name(d.rec.ino);
        problem(line);
        repair(line + " (entry removed)", [&] { return store_.fs_tree().remove({d.dir, kItemDirent, d.slot}); });
        continue;
      }
      refs[d.rec.ino]++;
      entries_in_[d.dir]++;
      if (S_ISDIR(target->second.mode)) {
        subdirs[d.dir]++;
        if (dir_parent.count(d.rec.ino)) problem(ino_name(d.rec.ino) + ": directory has more than one entry pointing at it");
        dir_parent[d.rec.ino] = d.dir;
      }
      uint8_t want = dtype_of_mode(target->second.mode);
      if (d.rec.dtype != want) {
        std::string line = where + " records file type " + std::to_string(d.rec.dtype) + ", inode has " + std::to_string(want);
        problem(line);
        repair(line, [&] {
          DirentRecord fixed = d.rec;
          fixed.dtype = want;
          return store_.fs_tree().put({d.dir, kItemDirent, d.slot}, fixed.encode());
        });
      }
    }

    for (uint64_t owner : xattr_owners_)
      if (!inodes_.count(owner)) problem(ino_name(owner) + ": xattr of a missing inode");
    check_xattr_chunks();
    for (const auto& [ino, s] : symlinks_) {
      auto it = inodes_.find(ino);
      if (it == inodes_.end() || !S_ISLNK(it->second.mode)) problem(ino_name(ino) + ": symlink target of a non-symlink");
    }
    for (const auto& [ino, list] : extents_)
      if (!inodes_.count(ino)) problem(ino_name(ino) + ": extents of a missing inode");

    check_orphan_entries(refs);
    check_truncate_entries();
    check_speculative_entries();

    uint64_t max_ino = 0;
    for (auto& [ino, rec] : inodes_) {
      max_ino = std::max(max_ino, ino);
      report_.inodes++;
      if (!valid_file_type(rec.mode)) {
        problem(ino_name(ino) + ": invalid file type in mode " + std::to_string(rec.mode));
        continue;
      }
      if (S_ISDIR(rec.mode)) report_.directories++;
      else if (S_ISREG(rec.mode)) report_.regular_files++;
      else if (S_ISLNK(rec.mode)) report_.symlinks++;
      else report_.specials++;

      if (live_orphans_.count(ino)) {
        // Unlinked while in use: nlink 0, no entries, storage intact until it is freed.
        report_.orphans++;
        if (S_ISDIR(rec.mode) && entries_in_[ino] != 0)
          problem(ino_name(ino) + ": orphaned directory still holds " + std::to_string(entries_in_[ino]) + " entries");
        check_extents(ino, rec);
        continue;
      }
      uint64_t expected = S_ISDIR(rec.mode) ? 2 + subdirs[ino] : refs[ino];
      if (ino != kRootIno && refs[ino] == 0) {
        problem(ino_name(ino) + ": not referenced by any directory entry");
        continue;
      }
      if (S_ISDIR(rec.mode)) {
        uint64_t want_parent = ino == kRootIno ? kRootIno : dir_parent[ino];
        if (rec.parent != want_parent) {
          std::string line = ino_name(ino) + ": parent pointer " + std::to_string(rec.parent) + " should be " + std::to_string(want_parent);
          problem(line);
          repair(line, [&, ino = ino, &rec = rec] {
            rec.parent = want_parent;
            return store_.fs_tree().put({ino, kItemInode, 0}, rec.encode());
          });
        }
      }
      if (rec.nlink != expected) {
        std::string line = ino_name(ino) + ": link count " + std::to_string(rec.nlink) + " should be " + std::to_string(expected);
        problem(line);
        repair(line, [&, ino = ino, &rec = rec] {
          rec.nlink = static_cast<uint32_t>(expected);
          return store_.fs_tree().put({ino, kItemInode, 0}, rec.encode());
        });
      }
      if (S_ISLNK(rec.mode)) {
        auto s = symlinks_.find(ino);
        uint64_t bytes = s == symlinks_.end() ? 0 : s->second.bytes;
        if (bytes != rec.size || bytes == 0 || bytes > Filesystem::kMaxSymlink)
          problem(ino_name(ino) + ": symlink target has " + std::to_string(bytes) + " bytes, size says " + std::to_string(rec.size));
      } else if (S_ISDIR(rec.mode) && rec.size != 0) {
        problem(ino_name(ino) + ": directory size " + std::to_string(rec.size) + " should be 0");
      }
      check_extents(ino, rec);
    }
    if (max_ino >= sb_.next_ino) {
      std::string line = "superblock next_ino " + std::to_string(sb_.next_ino) + " is not above the largest inode " + std::to_string(max_ino);
      problem(line);
      repair(line, [&] {
        store_.superblock().next_ino = max_ino + 1;
        return Status();
      });
    }
  }

  // Each orphan entry must name an existing inode of its generation with nlink 0 and no
  // directory entry; the superblock bit must say whether the list is empty.
  void check_orphan_entries(std::unordered_map<uint64_t, uint64_t>& refs) {
    const bool bit = sb_.ro_compat & kRoCompatOrphans;  // as found: repairs below may change it
    for (const auto& [ino, entry] : orphan_entries_) {
      std::string where = "orphan list: " + ino_name(ino);
      auto it = inodes_.find(ino);
      std::string why;
      if (it == inodes_.end()) why = " does not exist";
      else if (ino == kRootIno) why = " is the root directory";
      else if (it->second.generation != entry.generation)
        why = " has generation " + std::to_string(it->second.generation) + ", the entry " + std::to_string(entry.generation);
      else if (it->second.nlink != 0 || refs[ino] != 0)
        why = " has " + std::to_string(it->second.nlink) + " links and " + std::to_string(refs[ino]) + " directory entries";
      if (why.empty()) {
        live_orphans_.insert(ino);
        continue;
      }
      std::string line = where + why + " (stale entry)";
      problem(line);
      repair(line + " (entry removed)", [&, ino = ino] { return remove_orphan(store_, ino); });
    }
    // Clear over a non-empty list, an older binary could have written (and leaked) the
    // orphans. Set over an empty list is harmless (a crash between the list emptying and the
    // bit reaching the disk cannot happen, but mount would clear it): repair mode clears it
    // quietly, as mount does.
    if (!bit && !orphan_entries_.empty()) {
      std::string line = "superblock orphan feature bit is clear but the orphan list is not empty";
      problem(line);
      repair(line, [&] {
        if (live_orphans_.empty()) store_.superblock().ro_compat &= ~kRoCompatOrphans;
        else store_.superblock().ro_compat |= kRoCompatOrphans;
        return Status();
      });
    } else if (bit && orphan_entries_.empty() && opts_.repair) {
      store_.superblock().ro_compat &= ~kRoCompatOrphans;
    }
  }

  // Each entry of the speculative list names an existing inode; every inode with speculative
  // extents past EOF is listed (else a crash would strand them); the incompat bit says whether the
  // list is empty (set over an empty list is harmless: repair clears it, as trimming does).
  void check_speculative_entries() {
    const bool bit = sb_.incompat & kIncompatSpeculative;
    for (uint64_t ino : speculative_entries_) {
      if (inodes_.count(ino)) continue;
      std::string line = "speculative list: " + ino_name(ino) + " does not exist (stale entry)";
      problem(line);
      repair(line + " (entry removed)", [&, ino] { return remove_speculative(store_, ino); });
    }
    // A speculative extent the file has grown over is an ordinary unwritten one: only what
    // lies past EOF is trimmed, so only that must be listed.
    for (const auto& [ino, list] : extents_) {
      auto inode = inodes_.find(ino);
      // A pending truncate frees every extent past EOF, speculative ones too.
      if (inode == inodes_.end() || speculative_entries_.count(ino) || pending_truncates_.count(ino)) continue;
      const uint64_t eof_block = (inode->second.size + sb_.block_size - 1) / sb_.block_size;
      bool speculative = false;
      for (const ExtentFound& e : list)
        speculative |= (e.rec.flags & kExtentSpeculative) && e.file_block + e.rec.nblocks > eof_block;
      if (!speculative) continue;
      std::string line = ino_name(ino) + ": speculative extents, but not on the speculative list";
      problem(line);
      repair(line + " (listed)", [&, ino = ino] { return add_speculative(store_, ino); });
    }
    if (!bit && !speculative_entries_.empty()) {
      std::string line = "superblock speculative feature bit is clear but the speculative list is not empty";
      problem(line);
      repair(line, [&] {
        store_.superblock().incompat |= kIncompatSpeculative;
        return Status();
      });
    } else if (bit && speculative_entries_.empty() && opts_.repair) {
      store_.superblock().incompat &= ~kIncompatSpeculative;
    }
  }

  // Each entry of the pending-truncate list names an existing regular file; no file that is
  // not listed has written blocks past EOF (growing it would show their old data: a truncate
  // that lost its entry); the ro_compat bit says whether the list is empty.
  void check_truncate_entries() {
    const bool bit = sb_.ro_compat & kRoCompatTruncates;
    for (uint64_t ino : truncate_entries_) {
      auto inode = inodes_.find(ino);
      if (inode != inodes_.end() && S_ISREG(inode->second.mode)) {
        pending_truncates_.insert(ino);
        report_.truncates_pending++;
        continue;
      }
      std::string line = "pending-truncate list: " + ino_name(ino) + (inode == inodes_.end() ? " does not exist" : " is not a regular file") +
                         " (stale entry)";
      problem(line);
      repair(line + " (entry removed)", [&, ino] { return remove_pending_truncate(store_, ino); });
    }
    for (const auto& [ino, list] : extents_) {
      auto inode = inodes_.find(ino);
      if (inode == inodes_.end() || !S_ISREG(inode->second.mode) || pending_truncates_.count(ino)) continue;
      const uint64_t eof_block = (inode->second.size + sb_.block_size - 1) / sb_.block_size;
      const ExtentFound* past = nullptr;
      for (const ExtentFound& e : list)
        if (!(e.rec.flags & kExtentUnwritten) && e.file_block + e.rec.nblocks > eof_block &&
            (!past || e.file_block < past->file_block))
          past = &e;
      if (!past) continue;
      std::string line = ino_name(ino) + ": written blocks past EOF (size " + std::to_string(inode->second.size) +
                         ", extent at file block " + std::to_string(past->file_block) + "): growing the file would show their old data";
      problem(line);
      if (!opts_.repair) continue;
      // Listed here, freed by finish_truncates() once everything is checked (as mount would).
      Status st = in_operation(store_, 8, [&, ino = ino] { return add_pending_truncate(store_, ino); });
      if (!st.ok()) {
        problem("repair failed: " + st.message());
        continue;
      }
      pending_truncates_.insert(ino);
      repaired_past_eof_[ino] = line + " (freed)";
    }
    if (!bit && !truncate_entries_.empty()) {
      std::string line = "superblock pending-truncate feature bit is clear but the pending-truncate list is not empty";
      problem(line);
      repair(line, [&] {
        store_.superblock().ro_compat |= kRoCompatTruncates;
        return Status();
      });
    } else if (bit && truncate_entries_.empty() && opts_.repair && repaired_past_eof_.empty()) {
      store_.superblock().ro_compat &= ~kRoCompatTruncates;
    }
  }

  // Repair mode finishes the pending truncates, as mount would, once everything else is
  // checked; never on damaged trees (freeing could release blocks something unseen owns).
  void finish_truncates() {
    if (!opts_.repair || pending_truncates_.empty()) return;
    if (trees_damaged_ || double_owned_) {
      problem("pending truncates left unfinished: the trees are damaged");
      return;
    }
    for (uint64_t ino : pending_truncates_) {
      auto r = finish_truncate(store_, ino);
      if (!r.ok()) {
        problem("could not finish the truncate of " + ino_name(ino) + ": " + r.status().message());
        continue;
      }
      report_.truncates_finished++;
      if (auto it = repaired_past_eof_.find(ino); it != repaired_past_eof_.end()) corrected(it->second);
    }
    report_.free_blocks = store_.allocator().free_blocks();
  }

  // Repair mode frees the orphans, as mount would, once everything else is checked (their
  // blocks were counted as owned above). Never on damaged trees: freeing could release blocks
  // that something unseen still owns.
  void free_orphans() {
    if (!opts_.repair || live_orphans_.empty()) return;
    if (trees_damaged_ || double_owned_) {
      problem("orphaned inodes left in place: the trees are damaged");
      return;
    }
    for (uint64_t ino : live_orphans_) {
      auto r = reclaim_orphan(store_, ino);
      if (!r.ok()) problem("could not free orphaned " + ino_name(ino) + ": " + r.status().message());
      else if (*r == Reclaimed::kFreed) report_.orphans_freed++;
    }
    report_.free_blocks = store_.allocator().free_blocks();
  }

  void check_extents(uint64_t ino, InodeRecord& rec) {
    auto it = extents_.find(ino);
    uint64_t blocks = 0;
    if (it != extents_.end()) {
      if (!S_ISREG(rec.mode)) problem(ino_name(ino) + ": only regular files may have extents");
      auto& list = it->second;
      std::sort(list.begin(), list.end(), [](const ExtentFound& a, const ExtentFound& b) { return a.file_block < b.file_block; });
      uint64_t next_free_file_block = 0;
      for (const ExtentFound& e : list) {
        auto where = [&] { return ino_name(ino) + ": extent at file block " + std::to_string(e.file_block); };
        const uint64_t n = e.rec.nblocks, dev = e.rec.dev_block;
        if (e.file_block + n < e.file_block) {
          problem(where() + " wraps around");
          continue;
        }
        if (e.file_block < next_free_file_block) problem(where() + " overlaps the previous extent");
        next_free_file_block = e.file_block + n;
        if (dev < sb_.data_start || dev >= sb_.total_blocks - 1 || n > sb_.total_blocks - 1 - dev) {
          problem(where() + " maps device blocks " + std::to_string(dev) + "+" + std::to_string(n) + " outside the data area");
          continue;
        }
        for (uint64_t i = 0; i < n; ++i) {
          claim(dev + i, [&] { return ino_name(ino) + " file block " + std::to_string(e.file_block + i); });
          if (!(e.rec.flags & kExtentUnwritten)) written_.push_back(dev + i);
        }
        blocks += n;
        report_.data_blocks += n;
      }
    }
    if (blocks != rec.blocks) {
      std::string line = ino_name(ino) + ": block count " + std::to_string(rec.blocks) + " should be " + std::to_string(blocks);
      problem(line);
      repair(line, [&] {
        rec.blocks = blocks;
        return store_.fs_tree().put({ino, kItemInode, 0}, rec.encode());
      });
    }
  }

  void check_checksums() {
    if (!sb_.data_checksums()) {
      if (!csum_groups_.empty()) problem("checksum tree holds checksums but data checksums are off");
      return;
    }
    std::sort(written_.begin(), written_.end());
    for (uint64_t b : written_) {
      auto g = csum_groups_.find(b / kCsumGroupBlocks);
      if (g == csum_groups_.end() || !(g->second.present & (1ull << (b % kCsumGroupBlocks))))
        problem("device block " + std::to_string(b) + " holds written file data but has no checksum");
    }
    for (auto& [group, g] : csum_groups_) {
      for (uint64_t i = 0; i < kCsumGroupBlocks; ++i) {
        if (!(g.present & (1ull << i))) continue;
        uint64_t b = group * kCsumGroupBlocks + i;
        if (!std::binary_search(written_.begin(), written_.end(), b)) {
          std::string line = "device block " + std::to_string(b) + " has a checksum but holds no written file data";
          problem(line);
          repair(line + " (checksum dropped)", [&, group = group, i] {
            CsumGroup copy = csum_groups_[group];
            copy.present &= ~(1ull << i);
            csum_groups_[group] = copy;
            Key key{0, kItemCsumGroup, group};
            if (copy.present == 0) return store_.csum_tree().remove(key);
            return store_.csum_tree().put(key, copy.encode());
          });
        }
      }
    }
  }

  void check_bitmaps() {
    Allocator& alloc = store_.allocator();
    const uint64_t total = sb_.total_blocks;
    // Report disagreements as runs of blocks, not one line per block.
    uint64_t b = 0;
    while (b < total) {
      bool owned = owned_[b], used = alloc.in_use(b);
      if (owned == used) {
        ++b;
        continue;
      }
      uint64_t start = b;
      while (b < total && bool(owned_[b]) == owned && alloc.in_use(b) == used) ++b;
      std::string range = "blocks " + std::to_string(start) + ".." + std::to_string(b - 1);
      if (used) {
        std::string line = range + " are marked in use but nothing owns them (leaked)";
        problem(line);
        // Unreachable subtrees of a damaged tree would look leaked: never free then.
        if (!trees_damaged_ && !double_owned_) repair(line, [&, start, b] { return alloc.set_in_use({start, b - start}, false); });
      } else {
        std::string line = range + " are in use but marked free";
        problem(line);
        repair(line, [&, start, b] { return alloc.set_in_use({start, b - start}, true); });
      }
    }
    report_.free_blocks = alloc.free_blocks();
    report_.total_blocks = total;
  }

  void check_counters() {
    Superblock& sb = store_.superblock();
    if (sb.inode_count != inodes_.size()) {
      std::string line = "superblock inode count " + std::to_string(sb.inode_count) + " should be " + std::to_string(inodes_.size());
      problem(line);
      // A damaged tree hides inodes: its count is no basis for a repair.
      if (!trees_damaged_ && !inodes_.empty()) repair(line, [&] {
        sb.inode_count = inodes_.size();
        return Status();
      });
    }
    if (sb.free_blocks != store_.allocator().free_blocks()) {
      std::string line = "superblock free block count " + std::to_string(sb.free_blocks) + " should be " +
                         std::to_string(store_.allocator().free_blocks());
      problem(line);
      // The superblock's count is refreshed from the bitmaps at every commit.
      repair(line, [&] { return Status(); });
    }
  }

  struct SymlinkParts {
    uint64_t chunks = 0;
    uint64_t bytes = 0;
  };
  struct ChunkedValue {
    uint64_t chunks = 0;
    uint64_t bytes = 0;
  };
  struct ChunkedXattr {
    std::string name;
    uint32_t size = 0;
  };

  // Every xattr kept in chunks has all of them, full but the last; every chunk has its xattr;
  // and the superblock says chunks are in use.
  void check_xattr_chunks() {
    const uint64_t chunk_bytes = BTree::max_value_size_for(sb_.block_size);
    for (const auto& [id, x] : chunked_xattrs_) {
      const std::string what = ino_name(id.first) + ": xattr '" + x.name + "'";
      auto it = xattr_chunks_.find(id);
      const uint64_t want_chunks = (x.size + chunk_bytes - 1) / chunk_bytes;
      if (it == xattr_chunks_.end()) problem(what + " has no value chunks");
      else if (it->second.chunks != want_chunks || it->second.bytes != x.size)
        problem(what + ": its value chunks hold " + std::to_string(it->second.bytes) + " bytes in " +
                std::to_string(it->second.chunks) + " chunks, the record says " + std::to_string(x.size) + " bytes");
    }
    for (const auto& [id, c] : xattr_chunks_)
      if (!chunked_xattrs_.count(id))
        problem(ino_name(id.first) + ": xattr value chunks (value id " + std::to_string(id.second) + ") of no xattr");
    if (!chunked_xattrs_.empty() && !(sb_.incompat & kIncompatXattrChunks))
      problem("superblock: xattr values are kept in chunks but the incompat bit for them is not set");
  }

  MetadataStore& store_;
  const Superblock& sb_;
  const FsckOptions& opts_;
  FsckReport& report_;
  std::vector<uint8_t> owned_;
  bool double_owned_ = false;
  bool trees_damaged_ = false;
  std::map<uint64_t, InodeRecord> inodes_;
  std::vector<DirentFound> dirents_;
  std::unordered_map<uint64_t, std::vector<ExtentFound>> extents_;
  std::vector<uint64_t> xattr_owners_;
  std::map<uint64_t, SymlinkParts> symlinks_;
  std::map<std::pair<uint64_t, uint64_t>, ChunkedXattr> chunked_xattrs_;  // (ino, value id)
  std::map<std::pair<uint64_t, uint64_t>, ChunkedValue> xattr_chunks_;    // (ino, value id)
  std::map<uint64_t, CsumGroup> csum_groups_;
  std::vector<uint64_t> written_;
  std::map<uint64_t, OrphanRecord> orphan_entries_;      // the orphan list, as found
  std::set<uint64_t> speculative_entries_;               // the speculative list, as found
  std::set<uint64_t> truncate_entries_;                  // the pending-truncate list, as found
  std::set<uint64_t> pending_truncates_;                 // its valid entries, and those repair adds
  std::map<uint64_t, std::string> repaired_past_eof_;    // problem lines a finished truncate corrects
  std::set<uint64_t> live_orphans_;                      // entries that name a proper orphan
  std::unordered_map<uint64_t, uint64_t> entries_in_;    // directory -> entries it holds
};

}  // namespace

FsckReport run_fsck(BlockDevice& dev, const FsckOptions& opts) {
  FsckReport report;
  auto problem = [&](const std::string& line) {
    report.problems.push_back(line);
    if (opts.on_problem) opts.on_problem(line);
  };
  if (opts.repair && dev.read_only()) {
    report.fatal = dev.name() + ": device is read-only; use -n to check without repairing";
    return report;
  }
  auto primary = read_superblock(dev, SuperblockCopy::kPrimary);
  auto backup = read_superblock(dev, SuperblockCopy::kBackup, primary.ok() ? &*primary : nullptr);
  if (!primary.ok() && !backup.ok()) {
    report.fatal = primary.status().message();
    return report;
  }
  bool backup_needs_rewrite = false;
  auto damaged_superblock = [&](uint64_t block, const char* holds, const Status& st) {
    problem(st.message());
    report.damaged_blocks.push_back({block, holds, st.message()});
  };
  if (!primary.ok()) {
    damaged_superblock(0, "primary superblock", primary.status());
    if (!opts.repair) {
      problem(dev.name() + ": further checks need the primary superblock; run without -n to restore it from the backup");
      return report;
    }
    Status st = write_superblock(dev, *backup, 0, 0);
    if (st.ok()) st = dev.flush();
    if (!st.ok()) {
      report.fatal = st.message();
      return report;
    }
    report.corrected.push_back(primary.status().message() + " (restored from the backup superblock)");
  } else if (!backup.ok()) {
    damaged_superblock(primary->backup_blocknr(), "backup superblock", backup.status());
    backup_needs_rewrite = true;
  } else if (backup->uuid != primary->uuid || backup->total_blocks != primary->total_blocks ||
             backup->block_size != primary->block_size || backup->journal_blocks != primary->journal_blocks) {
    problem(dev.name() + ": backup superblock describes a different filesystem than the primary");
    backup_needs_rewrite = true;
  }

  if (primary.ok() && (primary->ro_compat & ~kKnownRoCompat)) {
    std::string line = dev.name() + ": filesystem has unknown read-only-compatible features " +
                       std::to_string(primary->ro_compat & ~kKnownRoCompat) + " that this fsck cannot check";
    if (opts.repair) {
      report.fatal = line + "; it can only be checked read-only (-n)";
      return report;
    }
    problem(line);
  }
  auto store = MetadataStore::open(dev, {.read_only = !opts.repair, .tolerate_inconsistent_counters = true});
  if (!store.ok()) {
    problem(store.status().message());
    // The usual cause: a damaged tree root, which the store checks as it opens. Name the block.
    if (primary.ok()) {
      const Superblock& sb = *primary;
      for (auto [root, holds] : {std::pair<uint64_t, const char*>{sb.fs_tree_root, "filesystem tree root node"},
                                 {sb.csum_tree_root, "checksum tree root node"}}) {
        if (root >= sb.total_blocks) continue;
        AlignedBuffer blk(sb.block_size);
        Status st = dev.read(root * sb.block_size, blk.data(), sb.block_size);
        if (st.ok()) st = verify_block(blk.span(), BlockType::kBtreeNode, root, sb.uuid);
        if (st.ok()) continue;
        const std::string named = "block " + std::to_string(root) + " ";
        if (store.status().message().find(named) != std::string::npos) {
          report.damaged_blocks.push_back({root, holds, store.status().message()});
        } else {
          problem(dev.name() + ": " + st.message());
          report.damaged_blocks.push_back({root, holds, report.problems.back()});
        }
      }
    }
    return report;
  }
  report.replayed_transactions = (*store)->stats().replayed_transactions;
  FsckRun(**store, opts, report).run();
  if (!opts.repair && opts.with_store) opts.with_store(**store);
  if (opts.repair) {
    Status st = (*store)->close();  // commits the repairs, marks clean, rewrites the backup
    if (!st.ok()) problem("could not write repairs: " + st.message());
    else if (backup_needs_rewrite) report.corrected.push_back("backup superblock rewritten from the primary");
  }
  return report;
}

}  // namespace stablefs
