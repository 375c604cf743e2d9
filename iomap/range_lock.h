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

// The range locks of every file with I/O in flight or waiting, keyed by inode number.
// Thread-safe. An inode's entry exists only while some guard holds or waits for one of its
// ranges: the last guard to go frees it, so the registry is bounded by the requests in
// flight, not by the inodes ever touched.
class FileRangeLocks {
 private:
  struct Entry {
    RangeLock lock;
    size_t users = 0;  // guards holding or waiting for a range of this inode; GUARDED_BY the registry's mu_
  };

 public:
  // A granted range: released when the guard is destroyed or reset(), from any thread.
  // Move-only; an empty guard holds nothing. The registry must outlive it.
  class Held {
   public:
    Held() = default;
    Held(FileRangeLocks* owner, uint64_t ino, Entry* entry, RangeLock::Token token)
        : owner_(owner), ino_(ino), entry_(entry), token_(token) {}
    Held(Held&& o) noexcept
        : owner_(std::exchange(o.owner_, nullptr)), ino_(o.ino_), entry_(o.entry_), token_(o.token_) {}
    Held& operator=(Held&& o) noexcept {
      if (this != &o) {
        reset();
        owner_ = std::exchange(o.owner_, nullptr);
        ino_ = o.ino_;
        entry_ = o.entry_;
        token_ = o.token_;
      }
      return *this;
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { reset(); }
    void reset() {
      if (owner_) std::exchange(owner_, nullptr)->release(ino_, entry_, token_);
    }

   private:
    FileRangeLocks* owner_ = nullptr;
    uint64_t ino_ = 0;
    Entry* entry_ = nullptr;
    RangeLock::Token token_;
  };
  // Blocks until [start, end) of ino is granted. std::bad_alloc if the registry cannot grow.
  [[nodiscard]] Held lock(uint64_t ino, uint64_t start, uint64_t end, bool exclusive) EXCLUDES(mu_);
  // Inodes with an entry now (stablefs stats).
  size_t files() const EXCLUDES(mu_);

 private:
  void release(uint64_t ino, Entry* entry, RangeLock::Token token) EXCLUDES(mu_);
  void drop_user(uint64_t ino, Entry* entry) EXCLUDES(mu_);
  mutable Mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<Entry>> locks_ GUARDED_BY(mu_);
};

}  // namespace stablefs
