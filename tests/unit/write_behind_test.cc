// Write-behind (fs/write_behind.h, Volume::write_behind): a buffered write is answered on the
// calling thread once it is on its way to the device; whatever reports the file's size waits
// for its ioend; a failure after the answer is told to the next fsync, once; a write that
// cannot be placed is answered with its error as before.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "fs/write_behind.h"
#include "support/fault_tap.h"
#include "support/formatted_image.h"
#include "support/random_bytes.h"
#include "support/volume_io.h"

namespace stablefs {
namespace {

struct Answer {
  std::atomic<bool> given{false};
  std::thread::id thread;
  Result<size_t> result = Status::error(EINVAL, "no answer");
};

DirectIo::Done answer_into(Answer& a) {
  return [&a](Result<size_t> r) {
    a.thread = std::this_thread::get_id();
    a.result = std::move(r);
    a.given.store(true);
  };
}

}  // namespace

TEST_CASE("write-behind: answered once submitted; size, data and fsync follow the ioend") {
  test::FormattedImage img(64ull << 20);
  test::FaultTap tap;
  auto vol = test::open_volume(img.path, {.bounce = BouncePolicy::kNever, .io_tap = &tap});
  Volume& v = *vol;
  const uint64_t ino = test::make_file(v, "f");
  const auto data = test::random_bytes(3 * 4096 + 100, 7);  // an unaligned end: read-modify-write
  Answer a;
  v.write_behind(ino, 0, WriteSource{{data.data(), data.size()}, {}, {}}, answer_into(a));
  // Answered before the call returned, on this thread, with the whole length.
  REQUIRE(a.given.load());
  CHECK(a.thread == std::this_thread::get_id());
  REQUIRE(a.result.ok());
  CHECK(*a.result == data.size());
  CHECK(v.write_behind_state().answered_early() == 1);
  // (The borrowed source made the call wait for the device: the ioend has run or is running.)
  v.wait_written(ino);
  CHECK(v.write_behind_state().in_flight() == 0);
  auto inode = v.fs().getattr(ino);
  REQUIRE(inode.ok());
  CHECK(inode->rec.size == data.size());
  CHECK(test::read_at(v, ino, 0, data.size()) == data);
  CHECK(v.fsync(ino, false).ok());

  SUBCASE("a device failure after the answer is told to the next fsync, once") {
    tap.fail_writes(1, EIO);
    const auto more = test::random_bytes(4096, 9);
    Answer b;
    v.write_behind(ino, 1u << 20, WriteSource{{more.data(), more.size()}, {}, {}}, answer_into(b));
    REQUIRE(b.given.load());
    REQUIRE(b.result.ok());
    CHECK(*b.result == more.size());
    v.wait_written(ino);
    CHECK(v.write_behind_state().failed_after_answer() == 1);
    const Status first = v.fsync(ino, false);
    CHECK(first.code() == EIO);
    CHECK(v.fsync(ino, false).ok());
    // The failed write changed nothing: the size and bytes are those from before it.
    inode = v.fs().getattr(ino);
    REQUIRE(inode.ok());
    CHECK(inode->rec.size == data.size());
    CHECK(test::read_at(v, ino, 0, data.size()) == data);
  }
  SUBCASE("a write that cannot be placed is answered with its error, not early") {
    Answer c;
    const uint8_t byte = 1;
    v.write_behind(ino, DirectIo::kMaxFileBytes, WriteSource{{&byte, 1}, {}, {}}, answer_into(c));
    REQUIRE(c.given.load());
    CHECK(c.result.status().code() == EFBIG);
    CHECK(v.write_behind_state().answered_early() == 1);
    CHECK(v.fsync(ino, false).ok());
  }
  SUBCASE("sync waits for every write answered early") {
    const auto more = test::random_bytes(8192, 11);
    Answer d;
    v.write_behind(ino, 8192, WriteSource{{more.data(), more.size()}, {}, {}}, answer_into(d));
    REQUIRE(d.given.load());
    CHECK(v.sync().ok());
    CHECK(v.write_behind_state().in_flight() == 0);
    CHECK(test::read_at(v, ino, 8192, more.size()) == more);
  }
}

}  // namespace stablefs

namespace stablefs {

TEST_CASE("write-behind: a wait is for the writes started before it, so a stream of writes holds none up") {
  WriteBehind wb;
  CHECK_FALSE(wb.wait(5));  // nothing in flight
  const auto first = wb.started(5);
  REQUIRE(first);
  const uint64_t before = wb.next_ticket();
  const auto second = wb.started(5);  // the next write of the stream, after the wait began
  REQUIRE(second);
  const auto other = wb.started(6);
  REQUIRE(other);
  CHECK(wb.in_flight() == 3);
  wb.finished(5, *first, Status{});
  // The wait that began between the two writes of 5 is over although the second is in flight
  // (bounded: were it to wait for the second, finishing that one below lets it go).
  auto waiting = std::async(std::launch::async, [&] { return wb.wait_before(5, before); });
  CHECK(waiting.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(wb.in_flight() == 2);
  wb.finished(5, *second, Status::error(EIO, "device"));
  CHECK_FALSE(waiting.get());  // the first had finished: nothing to wait for
  CHECK(wb.failed_after_answer() == 1);
  CHECK(wb.take_error(5).code() == EIO);
  CHECK(wb.take_error(5).ok());  // told once
  CHECK(wb.take_error(6).ok());
  wb.finished(6, *other, Status{});
  wb.wait_all();
  CHECK(wb.in_flight() == 0);
  CHECK(wb.answered_early() == 3);
}

TEST_CASE("write-behind: a write whose ioend ran between a read of attributes and the wait shows") {
  WriteBehind wb;
  const uint64_t taken = wb.finished_count();  // before the attributes are read
  const auto w = wb.started(9);
  REQUIRE(w);
  wb.finished(9, *w, Status{});  // the ioend, after the read and before the wait
  // The wait finds nothing in flight; only the count tells the reader its copy is stale.
  CHECK_FALSE(wb.wait(9));
  CHECK(wb.finished_count() == taken + 1);
  // A write that never answered early (finished() without started()) moves nothing.
  wb.finished(9, 12345, Status{});
  CHECK(wb.finished_count() == taken + 1);
}

}  // namespace stablefs
