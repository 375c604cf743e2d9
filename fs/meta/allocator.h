// Allocator: the free-space allocator of one filesystem.
//
// The on-disk truth is the bitmap (docs/on-disk-format.md, "Free-space bitmap"): one bit per
// device block, 1 = in use, held in the kBitmap blocks [sb.bitmap_start, +sb.bitmap_blocks).
// The Allocator changes bits only through MetadataSpace (read, then modify before writing), so
// every change belongs to the running journal transaction; it never writes the 48-byte block
// header, which the journal stamps at commit.
//
// In memory it keeps an index of the free space built at load(): the extents whose bits are
// clear, and the subset of them that may be handed out now (by start, and by (length, start)
// for best fit). Memory is proportional to the number of free extents, never to the device
// size; bitmap blocks are not held, they are read through MetadataSpace when bits change.
//
// Freed blocks are not reused at once: a data block freed in transaction T may still be read
// through the committed mapping until T commits (Reuse::kAfterCommit); a metadata block may be
// named by a committed journal transaction until that transaction is checkpointed
// (Reuse::kAfterCheckpoint), and reusing it sooner would let replay overwrite the new contents.
//
// All on-disk input is distrusted: a bitmap that disagrees with the layout is refused by load()
// with EUCLEAN naming the bitmap block, and a free of a block that is not in use is EUCLEAN,
// never a crash.
//
// Ownership: the Allocator borrows the MetadataSpace, which must outlive it.
// Not thread-safe: REQUIRES the filesystem's metadata lock for every call, and the caller
// tells it about commits and checkpoints (transaction_committed(), checkpointed()) under it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "bounce/status.h"
#include "fs/format/format.h"
#include "fs/meta/metadata_space.h"

namespace stablefs {

struct Extent {
  uint64_t start = 0;
  uint64_t length = 0;
  uint64_t end() const { return start + length; }
  bool operator==(const Extent&) const = default;
};

// When freed blocks may be handed out again.
enum class Reuse {
  kAfterCommit,      // data blocks: once the transaction that freed them has committed
  kAfterCheckpoint,  // metadata blocks: once that transaction has also been checkpointed
};

// A set of disjoint, non-adjacent extents (adjacent ones are merged), optionally indexed by
// (length, start) as well. Exposed for the Allocator and its tests.
class ExtentSet {
 public:
  explicit ExtentSet(bool index_by_length) : by_length_enabled_(index_by_length) {}

  // Adds [start, start+length). REQUIRES: it overlaps nothing already in the set.
  void add(uint64_t start, uint64_t length);
  // Removes whatever part of [start, start+length) is in the set.
  void subtract(uint64_t start, uint64_t length);
  // True if some block of [start, start+length) is in the set.
  bool intersects(uint64_t start, uint64_t length) const;
  bool contains(uint64_t block) const { return intersects(block, 1); }
  // The extent holding block, or length 0 if none.
  Extent find(uint64_t block) const;

  uint64_t blocks() const { return blocks_; }
  size_t extents() const { return by_start_.size(); }
  const std::map<uint64_t, uint64_t>& by_start() const { return by_start_; }
  // REQUIRES: constructed with index_by_length.
  const std::set<std::pair<uint64_t, uint64_t>>& by_length() const { return by_length_; }
  void clear();

 private:
  void insert_raw(uint64_t start, uint64_t length);
  void erase_raw(std::map<uint64_t, uint64_t>::iterator it);

  bool by_length_enabled_;
  std::map<uint64_t, uint64_t> by_start_;             // start -> length
  std::set<std::pair<uint64_t, uint64_t>> by_length_;  // (length, start)
  uint64_t blocks_ = 0;
};

class Allocator {
 public:
  // How many free extents at or after the goal allocate() examines before falling back.
  static constexpr int kGoalSearchExtents = 64;

  // mkfs: creates every bitmap block with meta.create_fixed() and marks in use the reserved
  // blocks [0, sb.data_start), the backup superblock and the bits past the device's end.
  // EINVAL if the geometry is inconsistent.
  static Status format(MetadataSpace& meta, const Superblock& sb);

  // Mount: reads every bitmap block through meta.read() (which verifies header and checksum),
  // checks that reserved blocks are in use and tail bits are set (EUCLEAN naming the bitmap
  // block otherwise) and builds the free-extent index. Every clear bit is allocatable.
  static Result<std::unique_ptr<Allocator>> load(MetadataSpace& meta, const Superblock& sb);

  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Allocates between min_len and want contiguous blocks and marks them in use. Policy:
  //   1. goal != 0: the nearest free extent at or after goal (the goal itself when it is free),
  //      among the next kGoalSearchExtents, that holds want blocks from there;
  //   2. else the best-fitting free extent (smallest length >= want, lowest start on a tie);
  //   3. else the largest free extent, if it holds at least min_len blocks.
  // ENOSPC when no free extent of min_len blocks exists; EINVAL if 0 == min_len or
  // min_len > want. Bitmap bits that disagree with the index are EUCLEAN; on any error nothing
  // has changed.
  Result<Extent> allocate(uint64_t goal, uint64_t want, uint64_t min_len = 1);

  // Allocates the highest allocatable block and marks it in use: metadata placed this way
  // grows down from the device's end while file data grows up from its start (goals at the
  // end of a file's last extent), so the tree nodes that split while a file grows do not
  // land between its extents. ENOSPC when nothing is allocatable; EUCLEAN as allocate().
  Result<uint64_t> allocate_highest();

  // Reservations, for space whose allocation must commit together with what it is for (an
  // out-of-place write: the blocks belong to the file only once the write has reached the
  // device and the file is remapped). reserve() picks an extent by allocate()'s policy and
  // withholds it from allocate() without touching the bitmap, so a crash before claim() leaks
  // nothing. claim() marks (part of) a reserved extent in use in the running transaction;
  // unreserve() hands an unclaimed part back. The caller tracks what it reserved.
  Result<Extent> reserve(uint64_t goal, uint64_t want, uint64_t min_len = 1);
  Status claim(Extent e);
  void unreserve(Extent e);

  // Frees an extent: clears its bits now (in the running transaction); the blocks become
  // allocatable after transaction_committed() (kAfterCommit) or after the following
  // checkpointed() (kAfterCheckpoint). EUCLEAN, with nothing changed, if any block of it is
  // not in use, reserved, or past the device's end; EINVAL for length 0.
  Status free(Extent e, Reuse when);

  // The running transaction has committed.
  void transaction_committed();
  // Every committed transaction has been checkpointed (the journal names none of them).
  void checkpointed();

  uint64_t free_blocks() const { return clear_.blocks(); }         // bits clear (incl. pending)
  uint64_t allocatable_blocks() const { return avail_.blocks(); }  // what allocate() can hand out
  // Freed blocks waiting for a commit (data) or a checkpoint (metadata) before reuse.
  uint64_t awaiting_reuse_blocks() const;
  uint64_t total_blocks() const { return total_; }
  // The bitmap's bit for block (true for blocks past the device's end).
  bool in_use(uint64_t block) const;
  // The bit-clear extents, by start (fsck, tests).
  std::vector<Extent> free_extents() const;
  // How many bitmap blocks allocating or freeing e changes (for sizing a transaction).
  uint64_t bitmap_blocks_spanned(Extent e) const {
    return e.length == 0 ? 0 : (e.end() - 1) / bits_per_block_ - e.start / bits_per_block_ + 1;
  }

  // fsck repair: sets every bit of e to in_use. Blocks made free are allocatable at once.
  // EINVAL if e reaches past the device or would free a reserved block.
  Status set_in_use(Extent e, bool in_use);

 private:
  Allocator(MetadataSpace& meta, const Superblock& sb);
  // allocate()'s placement policy, without taking anything.
  Result<Extent> pick(uint64_t goal, uint64_t want, uint64_t min_len) const;

  // Reads the bitmap blocks covering [start, end).
  Result<std::vector<BufferRef>> read_bitmaps(uint64_t start, uint64_t end);
  // Number of set bits of [start, end) in the buffers returned by read_bitmaps(start, end).
  uint64_t count_set(const std::vector<BufferRef>& bufs, uint64_t start, uint64_t end) const;
  // Marks the buffers modified and sets or clears bits [start, end). Cannot fail.
  void write_bits(const std::vector<BufferRef>& bufs, uint64_t start, uint64_t end, bool value);
  // Bitmap-side of an allocation: verifies the bits are clear and sets them.
  Status mark_allocated(uint64_t start, uint64_t length);
  bool reserved(uint64_t block) const { return block < data_start_ || block == total_ - 1; }
  void release(std::vector<Extent>& pending);

  MetadataSpace& meta_;
  uint64_t total_;
  uint64_t bitmap_start_;
  uint64_t data_start_;
  uint64_t bits_per_block_;

  ExtentSet clear_{false};  // every extent whose bits are clear: mirrors the bitmap
  ExtentSet avail_{true};   // the allocatable subset of clear_
  std::vector<Extent> pending_commit_;       // freed kAfterCommit in the running transaction
  std::vector<Extent> pending_txn_ckpt_;     // freed kAfterCheckpoint in the running transaction
  std::vector<Extent> pending_checkpoint_;   // freed kAfterCheckpoint, committed, not checkpointed
};

}  // namespace stablefs
