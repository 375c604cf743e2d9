// The receive loop's reader turn (fs/fuse/reader_turn.h): one worker at a time holds it, a
// passed turn goes to a waiting worker, a waiter gives up once told to stop, and the polling
// helper sees a ready descriptor at once and an idle one only after its spin.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/fuse.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "fs/fuse/reader_turn.h"

namespace stablefs {

TEST_CASE("reader turn: one holder at a time; passing it lets one waiter in; a stopped waiter gives up") {
  ReaderTurn turn;
  const auto never = [] { return false; };
  REQUIRE(turn.take(never));
  std::atomic<bool> got{false};
  auto waiter = std::async(std::launch::async, [&] {
    const bool took = turn.take(never);
    got = took;
    return took;
  });
  // Bounded: the waiter must not get in while the turn is held.
  CHECK(waiter.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
  CHECK_FALSE(got.load());
  turn.pass();
  REQUIRE(waiter.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(waiter.get());
  // The waiter holds it now; a third worker told to stop returns without it.
  std::atomic<bool> stop{false};
  auto stopped = std::async(std::launch::async, [&] { return turn.take([&] { return stop.load(); }); });
  CHECK(stopped.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  stop = true;
  REQUIRE(stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK_FALSE(stopped.get());
  turn.pass();
  CHECK(turn.take(never));  // free again: taken at once
  turn.pass();
}

TEST_CASE("reader turn: requests that may wait long pass the turn first") {
  CHECK(serve_keeping_turn(FUSE_LOOKUP, 0));
  CHECK(serve_keeping_turn(FUSE_GETATTR, 0));
  CHECK(serve_keeping_turn(FUSE_CREATE, 0));
  CHECK(serve_keeping_turn(FUSE_READ, 0));
  CHECK(serve_keeping_turn(FUSE_WRITE, 0));
  CHECK(serve_keeping_turn(FUSE_OPEN, O_RDWR));
  CHECK_FALSE(serve_keeping_turn(FUSE_OPEN, O_RDWR | O_TRUNC));
  CHECK_FALSE(serve_keeping_turn(FUSE_FSYNC, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_FSYNCDIR, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_RELEASE, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_SETATTR, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_FALLOCATE, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_COPY_FILE_RANGE, 0));
  CHECK_FALSE(serve_keeping_turn(FUSE_INIT, 0));
  CHECK_FALSE(serve_keeping_turn(0xffffu, 0));  // unknown: the safe side
  // Polling for the next request only after one answered before its handler returned.
  CHECK(spin_after(FUSE_LOOKUP) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_CREATE) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_READ).count() == 0);
  CHECK(spin_after(FUSE_WRITE).count() == 0);
}

TEST_CASE("reader turn: polling sees a ready descriptor at once and gives up on an idle one after its spin") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(poll_for_request(fds[0], std::chrono::microseconds(2000)));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::microseconds(2000));
  REQUIRE(::write(fds[1], "x", 1) == 1);
  CHECK(poll_for_request(fds[0], std::chrono::microseconds(0)));
  CHECK(poll_for_request(fds[0], std::chrono::seconds(5)));
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace stablefs
