// FileRangeLocks keeps an entry only while a guard holds or waits for one of its inode's
// ranges: the registry is bounded by the I/O in flight, not by the files ever touched.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "iomap/range_lock.h"

namespace stablefs {
namespace {

TEST_CASE("range locks: entries go with the last guard of their inode") {
  FileRangeLocks locks;
  for (uint64_t ino = 1; ino <= 10000; ++ino) {
    FileRangeLocks::Held h = locks.lock(ino, 0, 4096, ino % 2 == 0);
    CHECK(locks.files() == 1);
  }
  CHECK(locks.files() == 0);

  FileRangeLocks::Held a = locks.lock(7, 0, 4096, false);
  FileRangeLocks::Held b = locks.lock(7, 0, 4096, false);  // shared: granted beside a
  FileRangeLocks::Held c = locks.lock(8, 0, ~0ull, true);
  CHECK(locks.files() == 2);
  a.reset();
  CHECK(locks.files() == 2);
  FileRangeLocks::Held moved = std::move(b);
  b.reset();  // empty after the move: releases nothing
  CHECK(locks.files() == 2);
  moved.reset();
  CHECK(locks.files() == 1);
  c.reset();
  CHECK(locks.files() == 0);
}

TEST_CASE("range locks: a waiter keeps the entry alive until it is granted and done") {
  FileRangeLocks locks;
  FileRangeLocks::Held first = locks.lock(3, 0, 8192, true);
  std::atomic<bool> granted{false};
  std::thread waiter([&] {
    FileRangeLocks::Held second = locks.lock(3, 4096, 12288, true);  // overlaps: waits
    granted = true;
  });
  // Bounded wait for the waiter to be queued (it cannot be granted while first is held).
  for (int i = 0; i < 200 && locks.files() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(granted.load());
  first.reset();  // the entry must survive: the waiter still uses it
  waiter.join();
  CHECK(granted.load());
  CHECK(locks.files() == 0);
}

}  // namespace
}  // namespace stablefs
