#include "iomap/range_lock.h"

#include <new>

namespace stablefs {

bool RangeLock::conflicts(const Handle& h, Token self) const {
  // Anything ahead of us in arrival order that overlaps and is incompatible blocks us; this
  // keeps a waiting writer from being overtaken by later readers.
  for (auto it = held_.begin(); it != self; ++it) {
    bool overlap = it->start < h.end && h.start < it->end;
    if (overlap && (it->exclusive || h.exclusive)) return true;
  }
  return false;
}

RangeLock::Token RangeLock::lock(uint64_t start, uint64_t end, bool exclusive) {
  MutexLock lock(mu_);
  Token t = held_.insert(held_.end(), Handle{start, end, exclusive, false});
  changed_.wait(mu_, [&]() REQUIRES(mu_) { return !conflicts(*t, t); });
  t->granted = true;
  return t;
}

void RangeLock::unlock(Token token) {
  {
    MutexLock lock(mu_);
    held_.erase(token);
  }
  changed_.notify_all();
}

bool RangeLock::idle() const {
  MutexLock lock(mu_);
  return held_.empty();
}

}  // namespace stablefs

namespace stablefs {

FileRangeLocks::Held FileRangeLocks::lock(uint64_t ino, uint64_t start, uint64_t end, bool exclusive) {
  Entry* entry;
  {
    MutexLock lock(mu_);
    auto& slot = locks_[ino];
    if (!slot) slot = std::make_unique<Entry>();
    entry = slot.get();
    ++entry->users;  // from here the entry stays until this guard's release()
  }
  try {
    return {this, ino, entry, entry->lock.lock(start, end, exclusive)};
  } catch (const std::bad_alloc&) {
    drop_user(ino, entry);
    throw;
  }
}

void FileRangeLocks::release(uint64_t ino, Entry* entry, RangeLock::Token token) {
  entry->lock.unlock(token);
  drop_user(ino, entry);
}

void FileRangeLocks::drop_user(uint64_t ino, Entry* entry) {
  MutexLock lock(mu_);
  if (--entry->users == 0) locks_.erase(ino);
}

size_t FileRangeLocks::files() const {
  MutexLock lock(mu_);
  return locks_.size();
}

}  // namespace stablefs
