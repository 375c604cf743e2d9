// MetadataStore: one filesystem's metadata on its device — superblock, buffer cache,
// journal, allocator and the two B+trees — and the running transaction that ties them.
//
// Every change happens inside an operation:
//   SFS_TRY(store.begin_operation(blocks_needed));   // may commit; refuses ENOSPC/EROFS/EIO
//   ... tree and allocator calls (they call modify() on what they change) ...
//   return store.end_operation(status);
// An operation that fails after changing metadata cannot be undone, so the store shuts down
// (like XFS): nothing more is committed and later operations fail with EIO; the device keeps
// its last committed state. Transactions commit on sync(), when they grow large, and at
// close(); each commit is one journal write plus one flush (group commit).
//
// Not thread-safe: REQUIRES the filesystem's metadata lock for every call.
#pragma once

#include <atomic>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bounce/block_device.h"
#include "fs/meta/allocator.h"
#include "fs/meta/btree.h"
#include "fs/meta/buffer_cache.h"
#include "fs/format/format.h"
#include "fs/meta/journal.h"
#include "fs/meta/metadata_space.h"

namespace stablefs {

// Space the data path leaves to metadata: writes into holes, out-of-place reservations and
// preallocation never take the last kMetadataReserveBlocks allocatable blocks, so the ioend
// that records a write (and truncate, punch, unlink: the updates that free space) can always
// run, even on a full filesystem. Without it a write could take the blocks its own ioend (or
// the extent insert of its allocation) needs, fail after the data reached the device, and
// shut the store down.
inline constexpr uint64_t kMetadataReserveBlocks = 256;
// The part of that reserve operations that only add metadata (new names, inodes, xattrs) must
// leave as well: a full filesystem still takes a new file, yet deleting and freeing orphans
// (which take at most this much per step) always find room.
inline constexpr uint64_t kDeleteReserveBlocks = kMetadataReserveBlocks / 2;

struct StoreOptions {
  bool read_only = false;
  size_t cache_blocks = 16384;  // clean metadata blocks kept in memory
  // fsck: open even when summary counters disagree with the structures (fsck reports them).
  bool tolerate_inconsistent_counters = false;
};

struct StoreStats {
  uint64_t transactions_committed = 0;
  uint64_t checkpoints = 0;
  uint64_t replayed_transactions = 0;  // at open
  uint64_t block_reads = 0;            // read() calls, cache hits included
  uint64_t ordered_data_flushes = 0;   // device flushes a commit made before its journal write
};

class MetadataStore : public MetadataSpace {
 public:
  // Opens an existing filesystem: verifies the superblock, replays the journal (read-only:
  // into memory only), loads the allocator, and, read-write, marks the filesystem dirty.
  static Result<std::unique_ptr<MetadataStore>> open(BlockDevice& dev, StoreOptions opts);
  // mkfs: lays out an empty filesystem with the geometry in sb (journal, bitmaps, empty
  // trees) and returns it open read-write inside a running transaction.
  static Result<std::unique_ptr<MetadataStore>> format(BlockDevice& dev, const Superblock& sb);
  ~MetadataStore() override;

  Status begin_operation(size_t blocks_needed = 16);
  // begin_operation for an operation that only adds metadata (a new inode, name or xattr):
  // it must also leave kDeleteReserveBlocks allocatable, the room the operations that free
  // space (unlink, truncate, freeing orphans) rely on. ENOSPC otherwise: without it names
  // and xattrs could fill a filesystem until not even a file could be deleted.
  Status begin_growing_operation(size_t blocks_needed);
  // Between operations: when fewer than blocks are allocatable and freed blocks are only
  // waiting for a commit or checkpoint to become reusable, commits (and checkpoints) so they
  // are. A workload of overwrites frees as much as it allocates; this keeps it from running
  // out of space between timed commits.
  Status make_allocatable(uint64_t blocks);
  // Ends the running operation. A failure after a block was changed shuts the store down; a
  // failure before that leaves the store as the operation found it (superblock counters too).
  Status end_operation(Status result);
  // The running operation records data writes that completed on the device (an ioend): the
  // commit that makes it durable first flushes the device, so the data is on stable media
  // before the journal record that names it can be (ordered data, like jbd2's pre-flush).
  // REQUIRES: inside an operation.
  void note_data_written() { data_in_transaction_ = true; }
  // Commits the running transaction: a device flush first if it records data writes
  // (note_data_written), then the journal write + flush.
  Status commit();
  // A device cache flush for fsync and sync (after any commit they need). A device that failed
  // a flush may have lost any write since its last good one, so a later success would not
  // make them durable: the store shuts down (EIO) rather than report such writes safe.
  Status flush_device();
  // Commits and writes everything home; the log is empty afterwards.
  Status checkpoint();
  // Checkpoints, marks the filesystem clean in both superblocks and stops all writing.
  Status close();
  // A remount. To read-only: what close() writes (checkpoint, clean in both superblocks,
  // flush), after which operations fail with EROFS and nothing is written. Back to
  // read-write: marks the filesystem dirty again in a commit. EROFS for read-write when the
  // store was opened read-only (its device may be open read-only, its journal unreplayed);
  // EIO after a shutdown. The caller serialises it with every other call (the metadata mutex).
  Status set_read_only(bool read_only);
  // Shuts the store down as a failed operation does: nothing more is committed and later
  // operations fail with EIO. For a change made of several operations that failed halfway
  // in a state later operations must not build on (the next mount repairs it). Returns the
  // error to pass on, naming cause. The first shutdown is logged (one line on stderr) and its
  // cause kept (shutdown_cause); later ones only return their error.
  Status shut_down_with(Status cause);

  Superblock& superblock() { return sb_; }
  const Superblock& superblock() const { return sb_; }
  BTree& fs_tree() { return *fs_tree_; }
  BTree& csum_tree() { return *csum_tree_; }
  Allocator& allocator() { return *alloc_; }
  BlockDevice& device() { return dev_; }
  bool read_only() const { return read_only_.load(std::memory_order_acquire); }
  bool shut_down() const { return shut_down_; }
  // Why the store shut down (the first failure's message); empty while it has not.
  const std::string& shutdown_cause() const { return shutdown_cause_; }
  const StoreStats& stats() const { return stats_; }
  // Levels of the filesystem tree (1: a lone leaf).
  Result<uint32_t> fs_tree_height();
  const Journal& journal() const { return *journal_; }

  // MetadataSpace
  uint32_t block_size() const override { return sb_.block_size; }
  Result<BufferRef> read(uint64_t blocknr, BlockType type) override;
  void modify(const BufferRef& buf) override;
  Result<BufferRef> allocate(BlockType type, uint64_t goal) override;
  BufferRef create_fixed(uint64_t blocknr, BlockType type) override;
  Status free(uint64_t blocknr) override;

 private:
  MetadataStore(BlockDevice& dev, const Superblock& sb, StoreOptions opts, uint64_t next_seq);
  Status load_structures();
  // The tree roots are distinct, readable, and hold the root directory; next_ino is above
  // every inode number in use.
  Status check_roots();
  // Marks the filesystem clean and writes everything home: the log is empty, both
  // superblocks say clean, the device is flushed (close and the remount to read-only).
  Status write_clean_state();

  BlockDevice& dev_;
  Superblock sb_;
  // Flipped by set_read_only under the metadata mutex; read without it by the data path.
  std::atomic<bool> read_only_;
  const bool opened_read_only_;
  bool tolerate_counters_;
  BufferCache cache_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Allocator> alloc_;
  std::unique_ptr<BTree> fs_tree_;
  std::unique_ptr<BTree> csum_tree_;
  BufferRef sb_buf_;
  std::vector<BufferRef> running_;  // buffers changed in the running transaction
  uint64_t modifications_ = 0;      // modify() calls, to tell whether a failed op changed anything
  uint64_t op_start_modifications_ = 0;
  Superblock op_start_sb_;  // sb_ when the running operation began: restored if it fails unchanged
  bool shut_down_ = false;
  std::string shutdown_cause_;
  bool closed_ = false;
  bool data_in_transaction_ = false;  // see note_data_written
  StoreStats stats_;
};

// Wall-clock time as stored in inodes and the superblock.
uint64_t now_ns();

// One operation around fn (a Status or Result returning callable): begin_operation(blocks),
// fn, end_operation. A failure after changes (std::bad_alloc included) shuts the store down.
// REQUIRES: the metadata lock; not inside an operation.
template <typename Fn>
auto in_operation(MetadataStore& store, size_t blocks, Fn&& fn) -> decltype(fn()) {
  SFS_TRY(store.begin_operation(blocks));
  auto r = out_of_memory_as_error(fn);
  if (!r.ok()) return store.end_operation(r.status());
  SFS_TRY(store.end_operation({}));
  return r;
}

}  // namespace stablefs
