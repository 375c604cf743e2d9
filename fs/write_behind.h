// WriteBehind: buffered writes answered before the device has their data, and what waits
// for them.
//
// A buffered write (one the kernel sends from its page cache path: not O_DIRECT, O_SYNC or
// O_DSYNC) is answered once every byte of it is mapped and on its way to the device
// (WriteSource::submitted), as a kernel filesystem answers once the bytes are in its page
// cache; the ioend follows where the I/O completes. Until it has run, the file's size,
// times and block count on disk are those from before the write, so whatever reports or
// changes them first waits here for the inode (Volume::wait_written), and fsync(2) also
// learns here of a write that failed after its answer (the kernel's writeback error, told at
// fsync). A read waits as well: it would stop at the size from before the write, and the
// kernel takes a short read for the file's end. A reply carrying attributes read while a write
// was in flight is read again (finished_count()).
//
// A wait is for the writes started before it began, not for a moment with none in flight:
// a file kept busy by a stream of writes never holds a stat up for longer than one write.
//
// Thread-safety: every call from any thread. started() and finished() pair up per write;
// finished() runs where the I/O completes (the completion thread, or the submitter with
// inline I/O) and never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>

#include "bounce/mutex.h"
#include "bounce/status.h"

namespace stablefs {

class WriteBehind {
 public:
  // A write of ino is about to be answered early: its ticket, for finished(). nullopt (no
  // memory to note it): answer it when it is done instead.
  std::optional<uint64_t> started(uint64_t ino) EXCLUDES(mu_);
  // The write with that ticket has had its ioend (or failed): a failure is kept for the next
  // take_error(ino).
  void finished(uint64_t ino, uint64_t ticket, const Status& result) EXCLUDES(mu_);

  // Returns once every write of ino answered early before this call has finished; true if
  // one was in flight.
  bool wait(uint64_t ino) EXCLUDES(mu_) { return wait_before(ino, next_ticket()); }
  // The ticket the next write will get; wait_before(ino, t) waits for ino's writes with a
  // ticket below t only (those started before next_ticket() returned t).
  uint64_t next_ticket() EXCLUDES(mu_);
  bool wait_before(uint64_t ino, uint64_t before) EXCLUDES(mu_);
  // The same for every inode's writes.
  void wait_all() EXCLUDES(mu_);
  // The first failure of a write of ino answered early since the last call, cleared (ok: none).
  Status take_error(uint64_t ino) EXCLUDES(mu_);

  // How many writes answered early have finished, ever. A reader of an inode's attributes
  // takes it before reading them: if it moved by the time wait() has returned, a write's
  // ioend may have run between the read and the wait, and the read is stale.
  uint64_t finished_count() const { return finished_count_.load(); }

  uint64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t answered_early() const { return answered_early_.load(std::memory_order_relaxed); }
  uint64_t failed_after_answer() const { return failed_.load(std::memory_order_relaxed); }

 private:
  struct PerInode {
    std::set<uint64_t> tickets;  // of the writes in flight
    Status error;                // the first failure not yet taken
  };
  // Whether a write with a ticket below `before` is still in flight.
  static bool older_in_flight(const std::set<uint64_t>& tickets, uint64_t before) {
    return !tickets.empty() && *tickets.begin() < before;
  }

  Mutex mu_;
  CondVar finished_;  // a write finished
  uint64_t next_ticket_ GUARDED_BY(mu_) = 0;
  std::set<uint64_t> all_tickets_ GUARDED_BY(mu_);                 // every write in flight
  std::unordered_map<uint64_t, PerInode> inodes_ GUARDED_BY(mu_);  // only inodes with either
  // Entries in inodes_: 0 lets wait() and take_error() return without the lock, the common case.
  std::atomic<uint64_t> entries_{0};
  // Moved before a finished write's entry can leave inodes_ (and entries_ fall): a wait() that
  // finds nothing in flight sees every count that came before.
  std::atomic<uint64_t> finished_count_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> answered_early_{0};
  std::atomic<uint64_t> failed_{0};
};

}  // namespace stablefs
