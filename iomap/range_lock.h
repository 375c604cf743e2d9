// RangeLock: orders overlapping I/O to one file and lets disjoint I/O run in parallel.
//
// Byte ranges are locked shared (reads) or exclusive (writes, size changes). A request waits
// while an overlapping range is held in a conflicting mode; waiting is FIFO-fair enough for
// I/O (no starvation of writers: a waiting exclusive request blocks later overlapping shared
// ones). Thread-safe. lock() blocks; the holder releases with unlock() from any thread (the
// bounce path unlocks from the I/O completion thread).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>

#include "bounce/mutex.h"

namespace stablefs {

class RangeLock {
 public:
  struct Handle {
    uint64_t start = 0, end = 0;  // [start, end)
    bool exclusive = false;
    bool granted = false;
  };
  using Token = std::list<Handle>::iterator;

  Token lock(uint64_t start, uint64_t end, bool exclusive) EXCLUDES(mu_);
  void unlock(Token token) EXCLUDES(mu_);
  bool idle() const EXCLUDES(mu_);

 private:
  bool conflicts(const Handle& h, Token self) const REQUIRES(mu_);
  mutable Mutex mu_;
  CondVar changed_;
  std::list<Handle> held_ GUARDED_BY(mu_);  // granted and waiting, in arrival order
};

}  // namespace stablefs

namespace stablefs {

// The range locks of every open file, keyed by inode number. Thread-safe. Entries live as
// long as the registry (one RangeLock per inode ever locked; a few hundred bytes each).
class FileRangeLocks {
 public:
  struct Held {
    RangeLock* lock = nullptr;
    RangeLock::Token token;
  };
  Held lock(uint64_t ino, uint64_t start, uint64_t end, bool exclusive);
  static void unlock(const Held& held) { held.lock->unlock(held.token); }

 private:
  Mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<RangeLock>> locks_ GUARDED_BY(mu_);
};

}  // namespace stablefs
