#include "fs/inode/inode_table.h"

#include <sys/stat.h>
#include <time.h>

#include "fs/inode/inode_release.h"
#include "fs/inode/orphan_list.h"

namespace stablefs {
namespace {

Key inode_key(uint64_t ino) { return {ino, kItemInode, 0}; }

// pending_ is pruned of committed entries when it reaches this many.
constexpr size_t kPendingPruneAt = 4096;

}  // namespace

Timespec now_timespec() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return {ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

InodeTable::InodeTable(std::unique_ptr<MetadataStore> store)
    : store_(std::move(store)), block_size_(store_->superblock().block_size) {}

InodeTable::~InodeTable() = default;

Result<Inode> InodeTable::load(uint64_t ino) {
  if (ino == 0) return Status::error(ENOENT, "inode 0 does not exist");
  std::vector<uint8_t> v;
  SFS_ASSIGN(bool found, store_->fs_tree().lookup(inode_key(ino), &v));
  if (!found) return Status::error(ENOENT, "inode " + std::to_string(ino) + " does not exist");
  SFS_ASSIGN(InodeRecord rec, InodeRecord::decode(v, ino));
  return Inode{ino, rec};
}

Status InodeTable::save(const Inode& inode, InodeChange change) {
  // Before the record changes: a caller reading the epoch after this save sees the new one.
  if (S_ISREG(inode.rec.mode) && (inode.rec.mode & (S_ISUID | S_ISGID))) note_privilege_gained();
  SFS_TRY(store_->fs_tree().put(inode_key(inode.ino), inode.rec.encode()));
  note_change(inode.ino, change);
  return {};
}

void InodeTable::note_change(uint64_t ino, InodeChange change) {
  const uint64_t committed = store_->stats().transactions_committed;
  // Pruned at most once per commit: between commits every entry is uncommitted, so scanning
  // again would find nothing to drop.
  if (pending_.size() >= kPendingPruneAt && pruned_at_ != committed) {
    std::erase_if(pending_, [committed](const auto& e) { return e.second.any <= committed; });
    pruned_at_ = committed;
  }
  PendingChange& p = pending_[ino];
  p.any = committed + 1;
  if (change == InodeChange::kMetadata) p.data = committed + 1;
}

Status InodeTable::sync_inode(uint64_t ino, bool datasync) {
  MutexLock lock(mu_);
  if (store_->read_only()) return {};
  auto it = pending_.find(ino);
  const uint64_t needed = it == pending_.end() ? 0 : datasync ? it->second.data : it->second.any;
  if (needed > store_->stats().transactions_committed) SFS_TRY(store_->commit());
  return store_->flush_device();
}

void InodeTable::acquire(uint64_t ino, uint64_t n) {
  MutexLock lock(mu_);
  holds_[ino] += n;
}

Status InodeTable::release(uint64_t ino, uint64_t n) {
  MutexLock lock(mu_);
  auto it = holds_.find(ino);
  if (it == holds_.end()) return {};
  if (it->second > n) {
    it->second -= n;
    return {};
  }
  holds_.erase(it);
  if (closed_ || !orphans_.count(ino) || store_->read_only()) return {};
  auto r = reclaim_orphan(*store_, ino);
  if (!r.ok()) return r.status().with_context("freeing orphaned inode " + std::to_string(ino));
  orphans_.erase(ino);
  return {};
}

Status InodeTable::remove_last_link(Inode& inode) {
  if (!holds_.count(inode.ino)) return remove_inode_items(*store_, inode.ino);
  inode.rec.nlink = 0;
  inode.rec.ctime = now_timespec();
  SFS_TRY(save(inode));
  SFS_TRY(add_orphan(*store_, inode.ino, inode.rec.generation));
  orphans_.insert(inode.ino);
  return {};
}

Result<uint64_t> InodeTable::reclaim_all_orphans() {
  SFS_ASSIGN(std::vector<Orphan> list, list_orphans(*store_));
  uint64_t freed = 0;
  for (const Orphan& o : list) {
    SFS_ASSIGN(Reclaimed r, reclaim_orphan(*store_, o.ino));
    if (r == Reclaimed::kFreed) ++freed;
    orphans_.erase(o.ino);
  }
  // The bit follows the list in every transaction; should an older state have left it set
  // over an empty list, clearing it here reaches the disk with the next commit.
  if (list.empty()) store_->superblock().ro_compat &= ~kRoCompatOrphans;
  return freed;
}

Result<uint64_t> InodeTable::reclaim_released_orphans() {
  std::vector<uint64_t> released;
  for (uint64_t ino : orphans_)
    if (!holds_.count(ino)) released.push_back(ino);
  uint64_t freed = 0;
  for (uint64_t ino : released) {
    auto r = reclaim_orphan(*store_, ino);
    if (!r.ok()) return r.status().with_context("freeing orphaned inode " + std::to_string(ino));
    if (*r == Reclaimed::kFreed) ++freed;
    orphans_.erase(ino);
  }
  return freed;
}

size_t InodeTable::orphan_count() {
  MutexLock lock(mu_);
  return orphans_.size();
}

Status InodeTable::close() {
  MutexLock lock(mu_);
  if (closed_) return {};
  closed_ = true;
  Status reclaimed;
  if (!store_->read_only() && !store_->shut_down()) reclaimed = reclaim_all_orphans().status();
  Status closed = store_->close();
  return reclaimed.ok() ? closed : reclaimed;
}

}  // namespace stablefs
