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
#include <utility>

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
  // A granted range: released when the guard is destroyed or reset(), from any thread.
  // Move-only; an empty guard holds nothing.
  class Held {
   public:
    Held() = default;
    Held(RangeLock* lock, RangeLock::Token token) : lock_(lock), token_(token) {}
    Held(Held&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)), token_(o.token_) {}
    Held& operator=(Held&& o) noexcept {
      if (this != &o) {
        reset();
        lock_ = std::exchange(o.lock_, nullptr);
        token_ = o.token_;
      }
      return *this;
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { reset(); }
    void reset() {
      if (lock_) std::exchange(lock_, nullptr)->unlock(token_);
    }

   private:
    RangeLock* lock_ = nullptr;
    RangeLock::Token token_;
  };
  // Blocks until [start, end) of ino is granted. std::bad_alloc if the registry cannot grow.
  [[nodiscard]] Held lock(uint64_t ino, uint64_t start, uint64_t end, bool exclusive);

 private:
  Mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<RangeLock>> locks_ GUARDED_BY(mu_);
};

}  // namespace stablefs
