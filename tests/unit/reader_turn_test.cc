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
  const auto keeps = [](uint32_t opcode, uint32_t open_flags = 0) {
    return serve_keeping_turn({opcode, open_flags, 0}, false);
  };
  CHECK(keeps(FUSE_LOOKUP));
  CHECK(keeps(FUSE_GETATTR));
  CHECK(keeps(FUSE_CREATE));
  CHECK(keeps(FUSE_READ));
  CHECK(keeps(FUSE_WRITE));
  CHECK(keeps(FUSE_OPEN, O_RDWR));
  CHECK_FALSE(keeps(FUSE_OPEN, O_RDWR | O_TRUNC));
  CHECK_FALSE(keeps(FUSE_FSYNC));
  CHECK_FALSE(keeps(FUSE_FSYNCDIR));
  CHECK_FALSE(keeps(FUSE_RELEASE));
  CHECK_FALSE(keeps(FUSE_SETATTR));
  CHECK_FALSE(keeps(FUSE_FALLOCATE));
  CHECK_FALSE(keeps(FUSE_COPY_FILE_RANGE));
  CHECK_FALSE(keeps(FUSE_INIT));
  CHECK_FALSE(keeps(0xffffu));  // unknown: the safe side
  // I/O through the ring only starts: any size keeps the turn.
  CHECK(serve_keeping_turn({FUSE_READ, 0, 1u << 20}, false));
  CHECK(serve_keeping_turn({FUSE_WRITE, 0, 1u << 20}, false));
  // Polling for the next request only after one answered before its handler returned.
  CHECK(spin_after(FUSE_LOOKUP, false) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_CREATE, false) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_READ, false).count() == 0);
  CHECK(spin_after(FUSE_WRITE, false).count() == 0);
}

TEST_CASE("reader turn: with inline I/O, large reads and writes pass the turn and answered ones are followed by a poll") {
  constexpr uint32_t large = ReaderTurn::kLargeInlineIo;
  CHECK(serve_keeping_turn({FUSE_READ, 0, 4096}, true));
  CHECK(serve_keeping_turn({FUSE_WRITE, 0, large - 4096}, true));
  CHECK_FALSE(serve_keeping_turn({FUSE_READ, 0, large}, true));
  CHECK_FALSE(serve_keeping_turn({FUSE_WRITE, 0, 1u << 20}, true));
  // Everything else as without it.
  CHECK(serve_keeping_turn({FUSE_LOOKUP, 0, 0}, true));
  CHECK(serve_keeping_turn({FUSE_OPEN, O_RDWR, 0}, true));
  CHECK_FALSE(serve_keeping_turn({FUSE_OPEN, O_RDWR | O_TRUNC, 0}, true));
  CHECK_FALSE(serve_keeping_turn({FUSE_FSYNC, 0, 0}, true));
  // The reply went out before the handler returned: the caller's next request can follow.
  CHECK(spin_after(FUSE_READ, true) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_WRITE, true) == ReaderTurn::kSpin);
  CHECK(spin_after(FUSE_LOOKUP, true) == ReaderTurn::kSpin);
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

TEST_CASE("reader turn: waiting for a request returns once one is written, not before") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::atomic<bool> written{false};
  auto waiter = std::async(std::launch::async, [&] {
    wait_for_request(fds[0]);
    return written.load();
  });
  CHECK(waiter.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
  written = true;
  REQUIRE(::write(fds[1], "x", 1) == 1);
  REQUIRE(waiter.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(waiter.get());
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace stablefs
