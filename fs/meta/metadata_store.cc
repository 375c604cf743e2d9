#include "fs/meta/metadata_store.h"

#include <time.h>

#include <cstdio>
#include <cstring>

#include "fs/meta/btree_node.h"
#include "fs/format/endian.h"
#include "fs/format/fs_items.h"
#include "fs/format/superblock_io.h"

namespace stablefs {

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

MetadataStore::MetadataStore(BlockDevice& dev, const Superblock& sb, StoreOptions opts, uint64_t next_seq)
    : dev_(dev),
      sb_(sb),
      read_only_(opts.read_only),
      opened_read_only_(opts.read_only),
      tolerate_counters_(opts.tolerate_inconsistent_counters),
      cache_(dev, sb.block_size, sb.uuid, opts.cache_blocks),
      journal_(std::make_unique<Journal>(dev, sb, next_seq)) {}

MetadataStore::~MetadataStore() = default;

Result<std::unique_ptr<MetadataStore>> MetadataStore::open(BlockDevice& dev, StoreOptions opts) {
  SFS_ASSIGN(Superblock sb, read_superblock(dev, SuperblockCopy::kPrimary));
  if (!opts.read_only && (sb.ro_compat & ~kKnownRoCompat))
    return Status::error(EROFS, dev.name() + ": filesystem has unknown read-only-compatible features; open it read-only");
  if (!opts.read_only && dev.read_only()) return Status::error(EROFS, dev.name() + ": device is read-only");
  auto log = Journal::read_log(dev, sb);
  if (!log.ok()) return log.status().with_context(dev.name());
  std::unique_ptr<MetadataStore> store(new MetadataStore(dev, sb, opts, log->next_seq));
  store->stats_.replayed_transactions = log->transactions;
  if (log->transactions > 0) {
    if (opts.read_only) {
      store->cache_.set_overlay(std::move(log->images));
    } else {
      SFS_TRY(Journal::replay(dev, sb, *log).with_context(dev.name() + ": journal replay"));
    }
    // The journal may have held a newer superblock.
    auto sbbuf_or = store->cache_.read(0, BlockType::kSuperblock);
    if (!sbbuf_or.ok()) return sbbuf_or.status().with_context(dev.name() + ": superblock after journal replay");
    BufferRef sbbuf = *sbbuf_or;
    auto fresh = Superblock::decode(sbbuf->span(), dev.size_bytes());
    if (!fresh.ok()) return fresh.status().with_context(dev.name() + ": superblock after journal replay");
    if (fresh->uuid != sb.uuid || fresh->total_blocks != sb.total_blocks || fresh->journal_blocks != sb.journal_blocks)
      return Status::error(EUCLEAN, dev.name() + ": journal replay changed the filesystem geometry");
    store->sb_ = *fresh;
  }
  SFS_TRY(store->load_structures().with_context(dev.name()));
  if (!opts.read_only) {
    SFS_TRY(store->begin_operation(1));
    store->sb_.state = kStateDirty;
    store->sb_.mount_count++;
    store->sb_.mount_time_ns = now_ns();
    store->modify(store->sb_buf_);  // the dirty state reaches the disk with this commit
    SFS_TRY(store->end_operation(store->commit()));
  }
  return store;
}

Result<std::unique_ptr<MetadataStore>> MetadataStore::format(BlockDevice& dev, const Superblock& sb) {
  if (dev.read_only()) return Status::error(EROFS, dev.name() + ": device is read-only");
  SFS_TRY(Journal::format(dev, sb));
  std::unique_ptr<MetadataStore> store(new MetadataStore(dev, sb, StoreOptions{}, 1));
  store->sb_buf_ = store->cache_.create(0, BlockType::kSuperblock);
  store->modify(store->sb_buf_);
  SFS_TRY(Allocator::format(*store, sb));
  SFS_ASSIGN(store->alloc_, Allocator::load(*store, sb));
  SFS_ASSIGN(uint64_t fs_root, BTree::create_empty(*store, sb.data_start));
  SFS_ASSIGN(uint64_t csum_root, BTree::create_empty(*store, sb.data_start));
  store->sb_.fs_tree_root = fs_root;
  store->sb_.csum_tree_root = csum_root;
  store->fs_tree_ = std::make_unique<BTree>(*store, fs_root, [s = store.get()](uint64_t r) { s->sb_.fs_tree_root = r; });
  store->csum_tree_ = std::make_unique<BTree>(*store, csum_root, [s = store.get()](uint64_t r) { s->sb_.csum_tree_root = r; });
  store->sb_.state = kStateDirty;
  return store;
}

Status MetadataStore::load_structures() {
  SFS_ASSIGN(sb_buf_, cache_.read(0, BlockType::kSuperblock));
  SFS_ASSIGN(alloc_, Allocator::load(*this, sb_));
  if (!tolerate_counters_ && alloc_->free_blocks() != sb_.free_blocks)
    return Status::error(EUCLEAN, "superblock free_blocks " + std::to_string(sb_.free_blocks) +
                                      " disagrees with the bitmaps (" + std::to_string(alloc_->free_blocks()) + ")");
  fs_tree_ = std::make_unique<BTree>(*this, sb_.fs_tree_root, [this](uint64_t r) { sb_.fs_tree_root = r; });
  csum_tree_ = std::make_unique<BTree>(*this, sb_.csum_tree_root, [this](uint64_t r) { sb_.csum_tree_root = r; });
  return check_roots();
}

Status MetadataStore::check_roots() {
  auto bad = [](const char* field, const std::string& why) {
    return Status::error(EUCLEAN, std::string("superblock field ") + field + " is invalid: " + why);
  };
  if (sb_.fs_tree_root == sb_.csum_tree_root) return bad("csum_tree_root", "same block as fs_tree_root");
  // Each tree's smallest and largest keys say whose tree it is: the filesystem tree starts
  // with the root directory's inode, the checksum tree holds only checksum groups.
  Key first{}, last{};
  std::vector<uint8_t> v;
  bool any = false;
  Status walk = fs_tree_->scan(kMinKey, kMaxKey, [&](const Key& k, std::span<const uint8_t>) {
    first = k;
    any = true;
    return false;
  });
  if (!walk.ok()) return bad("fs_tree_root", walk.message());
  if (!any || first != Key{kRootIno, kItemInode, 0})
    return bad("fs_tree_root", "the tree at block " + std::to_string(sb_.fs_tree_root) + " does not start with the root directory");
  auto found = fs_tree_->lookup_le(kMaxKey, &last, &v);
  if (!found.ok()) return bad("fs_tree_root", found.status().message());
  // Every inode number in use lies below next_ino, or creating a file would reuse one.
  if (last.objectid >= sb_.next_ino)
    return bad("next_ino", std::to_string(sb_.next_ino) + " is not above inode " + std::to_string(last.objectid) + " in use");
  any = false;
  walk = csum_tree_->scan(kMinKey, kMaxKey, [&](const Key& k, std::span<const uint8_t>) {
    first = k;
    any = true;
    return false;
  });
  if (!walk.ok()) return bad("csum_tree_root", walk.message());
  if (any) {
    found = csum_tree_->lookup_le(kMaxKey, &last, &v);
    if (!found.ok()) return bad("csum_tree_root", found.status().message());
    if (first.objectid != 0 || first.type != kItemCsumGroup || last.objectid != 0 || last.type != kItemCsumGroup)
      return bad("csum_tree_root", "the tree at block " + std::to_string(sb_.csum_tree_root) + " holds items that are not checksums");
  }
  return {};
}

Status MetadataStore::begin_operation(size_t blocks_needed) {
  if (closed_) return Status::error(EIO, dev_.name() + ": filesystem is closed");
  if (shut_down_) return Status::error(EIO, dev_.name() + ": filesystem has shut down after an earlier error");
  if (read_only_) return Status::error(EROFS, dev_.name() + ": filesystem is read-only");
  // Keep each transaction well inside what one journal commit can hold.
  if (running_.size() + blocks_needed > journal_->max_transaction_blocks()) SFS_TRY(commit());
  if (blocks_needed > journal_->max_transaction_blocks())
    return Status::error(EFBIG, "operation needs more metadata than one transaction holds");
  if (alloc_) SFS_TRY(make_allocatable(blocks_needed));
  if (alloc_ && alloc_->allocatable_blocks() < blocks_needed)
    return Status::error(ENOSPC, dev_.name() + ": no space left for metadata");
  op_start_modifications_ = modifications_;
  op_start_sb_ = sb_;
  return {};
}

Status MetadataStore::begin_growing_operation(size_t blocks_needed) {
  SFS_TRY(begin_operation(blocks_needed));
  if (alloc_) SFS_TRY(make_allocatable(blocks_needed + kDeleteReserveBlocks));
  if (alloc_ && alloc_->allocatable_blocks() < blocks_needed + kDeleteReserveBlocks)
    return Status::error(ENOSPC, dev_.name() + ": no space left on device");
  return {};
}

Status MetadataStore::make_allocatable(uint64_t blocks) {
  if (read_only_ || alloc_->allocatable_blocks() >= blocks || alloc_->awaiting_reuse_blocks() == 0) return {};
  SFS_TRY(commit());
  if (alloc_->allocatable_blocks() < blocks && alloc_->awaiting_reuse_blocks() > 0) SFS_TRY(checkpoint());
  return {};
}

Status MetadataStore::end_operation(Status result) {
  if (result.ok()) return result;
  if (modifications_ != op_start_modifications_) return shut_down_with(result);
  // Nothing reached a block, but the operation may have moved superblock counters (a new
  // inode's number and count) before it failed: they go back with it.
  sb_ = op_start_sb_;
  return result;
}

Status MetadataStore::shut_down_with(Status cause) {
  std::string why = cause.message();
  if (why.rfind(dev_.name() + ": ", 0) == 0) why.erase(0, dev_.name().size() + 2);  // named once
  Status err = Status::error(cause.code() ? cause.code() : EIO, dev_.name() + ": shutting down after a failed metadata update: " + why);
  if (!shut_down_) {
    shut_down_ = true;
    shutdown_cause_ = why;
    std::fprintf(stderr, "stablefs: %s (nothing more is written; unmount and run stablefs fsck)\n", err.message().c_str());
  }
  return err;
}

Status MetadataStore::commit() {
  if (read_only_ || closed_) return {};
  if (shut_down_) return Status::error(EIO, dev_.name() + ": filesystem has shut down");
  if (running_.empty()) return {};
  sb_.free_blocks = alloc_->free_blocks();
  sb_.write_time_ns = now_ns();
  modify(sb_buf_);
  sb_.encode(sb_buf_->span());
  if (data_in_transaction_) {
    if (Status flushed = dev_.flush(); !flushed.ok()) return shut_down_with(flushed.with_context("flush before commit"));
    data_in_transaction_ = false;
    stats_.ordered_data_flushes++;
  }
  Status st = journal_->commit(running_);
  if (!st.ok()) return shut_down_with(st);
  running_.clear();
  alloc_->transaction_committed();
  stats_.transactions_committed++;
  if (!journal_->fits(journal_->max_transaction_blocks())) return checkpoint();
  cache_.trim();
  return {};
}

Status MetadataStore::flush_device() {
  if (shut_down_) return Status::error(EIO, dev_.name() + ": filesystem has shut down");
  Status st = dev_.flush();
  if (!st.ok()) return shut_down_with(st.with_context("device flush"));
  return {};
}

Status MetadataStore::checkpoint() {
  if (read_only_ || closed_) return {};
  SFS_TRY(commit());
  Status st = journal_->checkpoint();
  if (!st.ok()) return shut_down_with(st);
  alloc_->checkpointed();
  stats_.checkpoints++;
  cache_.trim();
  return {};
}

Status MetadataStore::close() {
  if (closed_ || read_only()) {
    closed_ = true;
    return {};
  }
  if (shut_down_) {
    closed_ = true;
    return Status::error(EIO, dev_.name() + ": filesystem had shut down; run stablefs fsck");
  }
  SFS_TRY(write_clean_state());
  closed_ = true;
  return {};
}

Status MetadataStore::write_clean_state() {
  SFS_TRY(begin_operation(1));
  sb_.state = kStateClean;
  modify(sb_buf_);
  SFS_TRY(checkpoint());
  // The backup copy follows every clean unmount.
  SFS_TRY(write_superblock(dev_, sb_, sb_.backup_blocknr(), journal_->next_seq()));
  return dev_.flush();
}

Status MetadataStore::set_read_only(bool read_only) {
  if (closed_) return Status::error(EIO, dev_.name() + ": filesystem is closed");
  if (read_only == this->read_only()) return {};
  if (read_only) {
    // After a shutdown nothing more may be written: the on-disk state stays as it was.
    if (!shut_down_) SFS_TRY(write_clean_state());
    read_only_.store(true, std::memory_order_release);
    return {};
  }
  if (opened_read_only_)
    return Status::error(EROFS, dev_.name() + ": mounted read-only from the start (the device is open read-only); unmount it and mount it read-write");
  if (shut_down_)
    return Status::error(EIO, dev_.name() + ": filesystem has shut down after an earlier error; unmount it and run stablefs fsck");
  read_only_.store(false, std::memory_order_release);
  Status dirty = begin_operation(1);
  if (dirty.ok()) {
    sb_.state = kStateDirty;
    modify(sb_buf_);
    dirty = end_operation(commit());
  }
  if (!dirty.ok() && !shut_down_) read_only_.store(true, std::memory_order_release);
  return dirty;
}

Result<BufferRef> MetadataStore::read(uint64_t blocknr, BlockType type) {
  stats_.block_reads++;
  return cache_.read(blocknr, type);
}

Result<uint32_t> MetadataStore::fs_tree_height() {
  SFS_ASSIGN(BufferRef root, cache_.read(sb_.fs_tree_root, BlockType::kBtreeNode));
  return uint32_t(get16(root->data() + kNodeLevelOffset)) + 1;
}

void MetadataStore::modify(const BufferRef& buf) {
  ++modifications_;
  if (buf->in_transaction) return;
  buf->in_transaction = true;
  running_.push_back(buf);
}

Result<BufferRef> MetadataStore::allocate(BlockType type, uint64_t) {
  // Metadata from the top, file data from the bottom (Allocator::allocate_highest): a file
  // written front to back stays in long extents.
  SFS_ASSIGN(const uint64_t block, alloc_->allocate_highest());
  BufferRef buf = cache_.create(block, type);
  modify(buf);
  return buf;
}

BufferRef MetadataStore::create_fixed(uint64_t blocknr, BlockType type) {
  BufferRef buf = cache_.create(blocknr, type);
  modify(buf);
  return buf;
}

Status MetadataStore::free(uint64_t blocknr) {
  // The journal may still name this block until the next checkpoint, so it is not reused
  // before then (a replay must never overwrite a block that has become file data).
  SFS_TRY(alloc_->free(Extent{blocknr, 1}, Reuse::kAfterCheckpoint));
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if ((*it)->blocknr == blocknr) {
      running_.erase(it);
      break;
    }
  }
  cache_.forget(blocknr);
  ++modifications_;
  return {};
}

}  // namespace stablefs
