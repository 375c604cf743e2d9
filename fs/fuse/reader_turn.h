// ReaderTurn: which receive-loop worker waits on /dev/fuse (a leader/follower scheme).
//
// With every worker blocked in read(), each request wakes one of them in the kernel, and the
// worker sleeps again after its reply: two task switches per request on the daemon's side,
// and on a machine whose idle CPUs halt, a halt and an inter-processor wake-up as well. Here
// one worker at a time holds the turn and alone waits on /dev/fuse, first polling for up to
// kSpin before it blocks in read() (spin_after()), so a request that follows its last reply
// within that time is taken without a sleep or a wake-up. The others wait for the turn in
// user space, out of the kernel's wait queue, so the kernel wakes nobody while the holder
// polls.
//
// Having read a request, the holder passes the turn on before serving it when it may wait on
// the device or the journal for long (serve_keeping_turn() is false), so that the requests
// behind it are read and served beside it; otherwise it serves the request itself and goes
// back to /dev/fuse. Reads and writes only start their I/O (the completion answers them), so
// one holder takes a deep queue of them in turn without a task switch between requests.
//
// When the data path's I/O is made by the thread that starts it (bounce/submission.h: a
// device that does its work in the submitter's context), a READ or WRITE is answered before
// its handler returns. Then the holder polls for the caller's next request after one, as after
// a metadata request, and passes the turn before one of kLargeInlineIo bytes or more, which
// would otherwise hold the turn for the device's time while the requests behind it wait.
//
// Thread-safety: every call from workers; take() blocks until the turn is free or stop is true.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "bounce/mutex.h"

namespace stablefs {

class ReaderTurn {
 public:
  // How long the holder polls /dev/fuse before it blocks in read().
  static constexpr std::chrono::microseconds kSpin{50};
  // With inline I/O, READs and WRITEs of at least this many bytes pass the turn first.
  static constexpr uint32_t kLargeInlineIo = 64 * 1024;

  // Returns holding the turn, or false (not holding it) once stop() is true (checked every
  // 50 ms while waiting).
  bool take(const std::function<bool()>& stop) EXCLUDES(mu_);
  // The holder gives the turn up; one waiting worker gets it.
  void pass() EXCLUDES(mu_);

 private:
  Mutex mu_;
  CondVar free_;
  bool held_ GUARDED_BY(mu_) = false;
};

// What the turn's rules look at in a request (its header and arguments).
struct TurnRequest {
  uint32_t opcode = 0;
  uint32_t open_flags = 0;  // FUSE_OPEN's flags (a truncating open waits for the file's writes)
  uint32_t io_bytes = 0;    // a READ's or WRITE's size
};

// Whether a request can be served by the turn's holder: it does not wait on the device or the
// journal beyond a mapping (reads, writes and namespace changes start their I/O and return).
// fsync, release, setattr, fallocate and the like pass the turn first. inline_io: the data
// path's I/O is made by the thread that starts it (then large READs and WRITEs pass too).
bool serve_keeping_turn(const TurnRequest& req, bool inline_io);

// How long to poll for the next request after serving one with this opcode while holding the
// turn: kSpin after a request answered before its handler returns (the caller's next request
// can follow at once); none after READ and WRITE answered from the I/O completion, that is
// unless inline_io (a caller waiting for one sends its next after the device, and polling
// meanwhile would take a CPU the completion needs).
std::chrono::microseconds spin_after(uint32_t opcode, bool inline_io);

// Polls fd for a request for up to `spin`, without sleeping; true if one is ready.
bool poll_for_request(int fd, std::chrono::microseconds spin);
// Sleeps until fd has a request (or an error to report), or a signal arrives.
void wait_for_request(int fd);

}  // namespace stablefs
