// InodeTable: the inodes of one mounted filesystem — the metadata store they live in, the
// metadata lock that serialises every metadata change, inode records, and the holds on
// inodes still in use.
//
// The namespace (fs/namespace) and the data path (fs/data) both work on inodes through this
// table, as siblings: neither reaches into the other. Every metadata operation runs with
// mutex() held (MutexLock lock(table.mutex())); the lock order is in bounce/mutex.h.
//
// Holds: a caller that keeps using an inode after its last link may go (an open file, a
// FUSE lookup reference) holds it. remove_last_link() of a held inode leaves it with nlink 0,
// its data intact, on the on-disk orphan list (fs/inode/orphan_list.h) in the same
// transaction; the release() that drops its last hold frees it. Mount frees the orphans a
// crash left behind (reclaim_all_orphans), close() those still listed.
// Thread-safe as annotated: REQUIRES(mutex()) members are called with the lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "bounce/mutex.h"
#include "fs/format/fs_items.h"
#include "fs/meta/metadata_store.h"

namespace stablefs {

struct Inode {
  uint64_t ino = 0;
  InodeRecord rec;
};

// The wall clock as an inode timestamp.
Timespec now_timespec();

// What a save() changed, for fdatasync: only the timestamps, or anything a later read of the
// data may need (size, extents, mode, links...).
enum class InodeChange { kMetadata, kTimesOnly };

class InodeTable {
 public:
  explicit InodeTable(std::unique_ptr<MetadataStore> store);
  ~InodeTable();
  InodeTable(const InodeTable&) = delete;
  InodeTable& operator=(const InodeTable&) = delete;

  // The metadata lock.
  Mutex& mutex() const RETURN_CAPABILITY(mu_) { return mu_; }
  MetadataStore& store() REQUIRES(mu_) { return *store_; }
  // For fsck and tests, which run nothing concurrently: the store without the lock.
  MetadataStore& store_unlocked() NO_THREAD_SAFETY_ANALYSIS { return *store_; }
  // Fixed for the life of the mount: no lock needed.
  uint32_t block_size() const { return block_size_; }
  // Moves on whenever save() stores a regular file whose mode has a set-id bit, and at
  // note_privilege_gained(). A file seen without privileges a data change takes away (set-id
  // bits, file capabilities; under the lock) while the epoch was E has none as long as the
  // epoch is still E: a data change may then skip looking. Any thread, no lock.
  uint64_t privilege_epoch() const { return privilege_epoch_.load(std::memory_order_acquire); }
  // Moves the epoch on for a privilege save() does not see (a regular file is about to get
  // file capabilities). Call it before the change is stored. Any thread, no lock.
  void note_privilege_gained() { privilege_epoch_.fetch_add(1, std::memory_order_acq_rel); }

  // ENOENT when ino does not exist; EUCLEAN when its record does not decode.
  Result<Inode> load(uint64_t ino) REQUIRES(mu_);
  // REQUIRES: inside an operation (MetadataStore::begin_operation). The change is noted as
  // belonging to the running transaction (for sync_inode).
  Status save(const Inode& inode, InodeChange change = InodeChange::kMetadata) REQUIRES(mu_);
  // Notes a change of ino made in the running transaction without save() (a new inode's
  // item, inserted by its creator), so sync_inode commits it: an fsync of a file just created
  // makes the file and its name durable.
  void note_change(uint64_t ino, InodeChange change) REQUIRES(mu_);
  // fsync(2) / fdatasync(2) of ino: commits the running transaction when it holds a change of
  // ino that must be durable (datasync: any but a times-only one), then flushes the device so
  // the file's data written directly is on stable media too. Nothing to do on a read-only mount.
  Status sync_inode(uint64_t ino, bool datasync) EXCLUDES(mu_);

  // Adds n holds on ino (no I/O; ino need not exist: the caller got it from a successful
  // lookup or create and takes the hold before handing it out).
  void acquire(uint64_t ino, uint64_t n = 1) EXCLUDES(mu_);
  // Drops n holds; when the last goes and ino is an orphan, it is freed with its data (may do
  // I/O). An error leaves the orphan listed, to be freed by close() or the next mount; so does
  // a read-only store, until reclaim_released_orphans() once it is writable again.
  Status release(uint64_t ino, uint64_t n = 1) EXCLUDES(mu_);
  // The inode's last link is gone (a directory: its only entry): frees it and everything it
  // owns, or, while it is held, saves it with nlink 0 and lists it as an orphan.
  // REQUIRES: inside an operation.
  Status remove_last_link(Inode& inode) REQUIRES(mu_);
  // Frees every orphan on the on-disk list; returns how many inodes it freed (stale entries
  // are dropped, not counted). REQUIRES: not inside an operation; nobody uses the orphans.
  Result<uint64_t> reclaim_all_orphans() REQUIRES(mu_);
  // Frees the orphans this mount listed whose holds are all gone (released while the store was
  // read-only); returns how many. REQUIRES: not inside an operation.
  Result<uint64_t> reclaim_released_orphans() REQUIRES(mu_);
  // Inodes this mount has on the orphan list right now.
  size_t orphan_count() EXCLUDES(mu_);

  // Frees every orphan (whatever holds remain), then closes the store: commits, writes
  // everything home, marks the filesystem clean. Only the first call acts; nothing may be
  // called after it but release() (a no-op then) and the destructor.
  Status close() EXCLUDES(mu_);

 private:
  mutable Mutex mu_;
  std::unique_ptr<MetadataStore> store_ PT_GUARDED_BY(mu_);
  const uint32_t block_size_;
  std::atomic<uint64_t> privilege_epoch_{1};
  std::unordered_map<uint64_t, uint64_t> holds_ GUARDED_BY(mu_);  // ino -> holds
  std::unordered_set<uint64_t> orphans_ GUARDED_BY(mu_);          // inodes this mount listed
  bool closed_ GUARDED_BY(mu_) = false;
  // The transaction (committed count + 1 when saved) holding each inode's last change, and
  // its last change other than times. Entries already committed are pruned as it grows
  // (at most once per commit).
  struct PendingChange {
    uint64_t any = 0;
    uint64_t data = 0;
  };
  std::unordered_map<uint64_t, PendingChange> pending_ GUARDED_BY(mu_);
  uint64_t pruned_at_ GUARDED_BY(mu_) = 0;  // transactions committed at the last prune
};

}  // namespace stablefs
