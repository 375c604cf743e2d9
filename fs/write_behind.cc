#include "fs/write_behind.h"

#include <new>

namespace stablefs {

bool WriteBehind::started(uint64_t ino) {
  MutexLock lock(mu_);
  try {
    auto [it, added] = inodes_.try_emplace(ino);
    if (added) entries_.fetch_add(1);  // seen by wait() without the lock once the answer is out
    ++it->second.in_flight;
  } catch (const std::bad_alloc&) {
    return false;
  }
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  answered_early_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void WriteBehind::finished(uint64_t ino, const Status& result) {
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;  // not started(): nothing to account
  PerInode& e = it->second;
  if (!result.ok()) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (e.error.ok()) e.error = result;
  }
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (--e.in_flight != 0) return;
  if (e.error.ok()) {
    inodes_.erase(it);
    entries_.fetch_sub(1);
  }
  idle_.notify_all();
}

bool WriteBehind::wait(uint64_t ino) {
  if (entries_.load() == 0) return false;
  MutexLock lock(mu_);
  bool waited = false;
  for (;;) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end() || it->second.in_flight == 0) return waited;
    waited = true;
    idle_.wait(mu_);
  }
}

void WriteBehind::wait_all() {
  MutexLock lock(mu_);
  idle_.wait(mu_, [&]() REQUIRES(mu_) { return in_flight_.load(std::memory_order_relaxed) == 0; });
}

Status WriteBehind::take_error(uint64_t ino) {
  if (entries_.load() == 0) return {};
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return {};
  Status error = it->second.error;
  it->second.error = Status{};
  if (it->second.in_flight == 0) {
    inodes_.erase(it);
    entries_.fetch_sub(1);
  }
  return error;
}

}  // namespace stablefs
