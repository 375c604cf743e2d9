#include "fs/write_behind.h"

#include <new>

namespace stablefs {

std::optional<uint64_t> WriteBehind::started(uint64_t ino) {
  MutexLock lock(mu_);
  const uint64_t ticket = next_ticket_;
  try {
    auto [it, added] = inodes_.try_emplace(ino);
    if (added) entries_.fetch_add(1);  // seen by wait() without the lock once the answer is out
    try {
      it->second.tickets.insert(ticket);
      all_tickets_.insert(ticket);
    } catch (const std::bad_alloc&) {
      it->second.tickets.erase(ticket);
      if (it->second.tickets.empty() && it->second.error.ok()) {
        inodes_.erase(it);
        entries_.fetch_sub(1);
      }
      throw;
    }
  } catch (const std::bad_alloc&) {
    return std::nullopt;
  }
  ++next_ticket_;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  answered_early_.fetch_add(1, std::memory_order_relaxed);
  return ticket;
}

void WriteBehind::finished(uint64_t ino, uint64_t ticket, const Status& result) {
  MutexLock lock(mu_);
  all_tickets_.erase(ticket);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;  // not started(): nothing to account
  finished_count_.fetch_add(1);
  PerInode& e = it->second;
  e.tickets.erase(ticket);
  if (!result.ok()) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (e.error.ok()) e.error = result;
  }
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (e.tickets.empty() && e.error.ok()) {
    inodes_.erase(it);
    entries_.fetch_sub(1);
  }
  finished_.notify_all();
}

uint64_t WriteBehind::next_ticket() {
  if (entries_.load() == 0) return 0;  // nothing in flight: nothing to wait for
  MutexLock lock(mu_);
  return next_ticket_;
}

bool WriteBehind::wait_before(uint64_t ino, uint64_t before) {
  if (entries_.load() == 0) return false;
  MutexLock lock(mu_);
  bool waited = false;
  for (;;) {
    auto it = inodes_.find(ino);
    if (it == inodes_.end() || !older_in_flight(it->second.tickets, before)) return waited;
    waited = true;
    finished_.wait(mu_);
  }
}

void WriteBehind::wait_all() {
  MutexLock lock(mu_);
  const uint64_t before = next_ticket_;
  while (older_in_flight(all_tickets_, before)) finished_.wait(mu_);
}

Status WriteBehind::take_error(uint64_t ino) {
  if (entries_.load() == 0) return {};
  MutexLock lock(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return {};
  Status error = it->second.error;
  it->second.error = Status{};
  if (it->second.tickets.empty()) {
    inodes_.erase(it);
    entries_.fetch_sub(1);
  }
  return error;
}

}  // namespace stablefs
