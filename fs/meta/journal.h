// Journal: the write-ahead log that makes every metadata change atomic and durable.
//
// Physical block journaling. A transaction is written as one contiguous run of log blocks:
//   descriptors (home block numbers) | the block images | commit (checksum over all of it)
// One descriptor block names up to (block_size - 64) / 8 images; a filesystem with
// kIncompatLongTransactions may use several, so one transaction holds thousands of blocks.
// and a single device flush makes it durable; a torn or half-written transaction fails the
// commit checksum and is ignored at replay. Images reach their home locations only at
// checkpoint (when the log is full, on sync of a long log, at unmount), after which the log
// header's start sequence moves past them. Replay applies every intact transaction from the
// start sequence on, in order, and stops at the first one that is missing or damaged.
//
// The journal owns no buffers: it holds references to buffers that wait for checkpoint and
// stamps their headers (seq, checksum) when they are committed.
// Not thread-safe: REQUIRES the filesystem's metadata lock.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "bounce/block_device.h"
#include "fs/meta/buffer_cache.h"
#include "fs/format/format.h"

namespace stablefs {

class Journal {
 public:
  // The outcome of reading a log: what replay would write, and where the log ends.
  struct LogContents {
    uint64_t start_seq = 0;         // header's first sequence
    uint64_t next_seq = 0;          // first sequence not found intact
    uint64_t transactions = 0;      // intact transactions found
    uint64_t end_block = 0;         // log block after the last intact transaction
    std::unordered_map<uint64_t, std::vector<uint8_t>> images;  // home block -> newest image
  };

  // mkfs: writes an empty log header whose start sequence is 1.
  static Status format(BlockDevice& dev, const Superblock& sb);
  // Reads the log without writing anything. A damaged header is an error; a damaged
  // transaction just ends the log.
  static Result<LogContents> read_log(BlockDevice& dev, const Superblock& sb);
  // Writes every image home, flushes, and empties the log (header start = next_seq).
  static Status replay(BlockDevice& dev, const Superblock& sb, const LogContents& log);

  // An empty log (after replay or format) whose next transaction has sequence next_seq.
  Journal(BlockDevice& dev, const Superblock& sb, uint64_t next_seq);

  // Largest transaction, in blocks of metadata, that commit() accepts.
  size_t max_transaction_blocks() const;
  // Whether a transaction of n blocks still fits in the log without a checkpoint.
  bool fits(size_t n) const;
  // Stamps and logs bufs as one transaction, then flushes. The buffers move from
  // "in transaction" to "needs checkpoint". REQUIRES fits(bufs.size()), bufs.size() <= max_transaction_blocks()
  // and every changed buffer of the running transaction in bufs (nothing uncommitted may
  // exist when a checkpoint writes home).
  Status commit(const std::vector<BufferRef>& bufs);
  // Writes every committed buffer home, flushes, and empties the log.
  // REQUIRES: no running transaction (buffers hold only committed bytes).
  Status checkpoint();

  uint64_t next_seq() const { return next_seq_; }
  size_t log_blocks_used() const { return head_ - log_start(); }
  size_t log_blocks_total() const { return sb_.journal_blocks - 1; }
  size_t checkpoint_pending() const { return checkpoint_.size(); }

 private:
  uint64_t log_start() const { return sb_.journal_start + 1; }
  uint64_t log_end() const { return sb_.journal_start + sb_.journal_blocks; }
  static Status write_header(BlockDevice& dev, const Superblock& sb, uint64_t start_seq);

  BlockDevice& dev_;
  Superblock sb_;  // geometry and uuid only
  uint64_t next_seq_;
  uint64_t head_;  // next free log block
  std::map<uint64_t, BufferRef> checkpoint_;  // home block -> buffer with committed bytes
};

}  // namespace stablefs
