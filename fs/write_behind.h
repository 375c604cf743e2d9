// WriteBehind: buffered writes answered before the device has their data, and what waits
// for them.
//
// A buffered write (one the kernel sends from its page cache path: not O_DIRECT, O_SYNC or
// O_DSYNC) is answered once every byte of it is mapped and on its way to the device
// (WriteSource::submitted), as a kernel filesystem answers once the bytes are in its page
// cache; the ioend follows on the completion thread. Until it has run, the file's size,
// times and block count on disk are those from before the write, so whatever reports or
// changes them first waits here for the inode (Volume::wait_written), and fsync(2) also
// learns here of a write that failed after its answer (the kernel's writeback error, told at
// fsync). Range locks already order the data itself: a read or another write of the range
// waits for the write's ioend.
//
// Thread-safety: every call from any thread. started() and finished() pair up per write;
// finished() runs on the I/O completion thread and never blocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_map>

#include "bounce/mutex.h"
#include "bounce/status.h"

namespace stablefs {

class WriteBehind {
 public:
  // A write of ino is about to be answered early. false (no memory to note it): answer it
  // when it is done instead.
  bool started(uint64_t ino) EXCLUDES(mu_);
  // Its ioend has run (or it failed): result is kept for the next take_error(ino).
  void finished(uint64_t ino, const Status& result) EXCLUDES(mu_);

  // Returns once no write of ino answered early is still in flight; true if one was.
  bool wait(uint64_t ino) EXCLUDES(mu_);
  // Returns once none of any inode is.
  void wait_all() EXCLUDES(mu_);
  // The first failure of a write of ino answered early since the last call, cleared (ok: none).
  Status take_error(uint64_t ino) EXCLUDES(mu_);

  uint64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t answered_early() const { return answered_early_.load(std::memory_order_relaxed); }
  uint64_t failed_after_answer() const { return failed_.load(std::memory_order_relaxed); }

 private:
  struct PerInode {
    uint64_t in_flight = 0;
    Status error;  // the first failure not yet taken
  };

  Mutex mu_;
  CondVar idle_;  // an inode's in_flight reached 0
  std::unordered_map<uint64_t, PerInode> inodes_ GUARDED_BY(mu_);  // only inodes with either
  // Entries in inodes_: 0 lets wait() and take_error() return without the lock, the common case.
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> answered_early_{0};
  std::atomic<uint64_t> failed_{0};
};

}  // namespace stablefs
