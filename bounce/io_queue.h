// IoQueue: asynchronous device I/O through io_uring (liburing), or made by the submitting
// thread itself for devices that do their work in the submitter's context.
//
// submit() queues a request and returns; requests are batched into one io_uring_enter per
// burst where the kernel allows. A completion thread reaps completions and calls each
// request's on_complete exactly once, from that thread, with the total bytes transferred or a
// negative errno. Short transfers are continued (the rest resubmitted) and EINTR/EAGAIN
// retried, so a request completes either fully (result == length) or with the device's error
// for that request alone. A request io_uring cancelled because the thread that submitted it
// exited is submitted again by the completion thread, so a submitter may exit at any time.
// Memory inside the registered arena (BouncePool::arena()) is submitted as fixed buffers.
//
// Inline mode (Mode::kInline): submit() makes the system call (preadv, pwritev, fdatasync)
// on the calling thread and calls on_complete there before it returns; there is no ring and
// no completion thread. For a device that does its work in the submitter's context (zram,
// brd: bio-based, with no device under it) io_uring cannot start the request without
// blocking, so it hands every request to a kernel worker thread, whose completion then wakes
// the completion thread: two thread switches per request that inline mode does not make.
// Results, continuation of short transfers, retries and the tap are as in ring mode. A
// caller that submits while holding a lock its on_complete also takes must not use it.
//
// A read that reaches the end of the file or device before its length (the device returns
// 0) completes with -EIO; so does a write the device accepts 0 bytes of. A flush completes
// with 0. A request of length 0 completes with 0.
//
// Batching (ring mode): submitters stage requests and one of them (whichever finds nobody
// else doing it) flushes the staged requests to the ring with one io_uring_enter, then loops
// while others staged more during that enter; the rest return at once. A thread with a
// submission plug open (bounce/submit_plug.h) only stages, and flushes when its plug does. At most depth
// requests are in flight: submit() waits for a completion when that many are, except on the
// completion thread (so an on_complete callback may submit follow-up I/O without
// deadlocking).
//
// The caller owns each IoRequest and its memory until on_complete has been called; the queue
// owns neither and does not touch the request once on_complete has been called (the callback
// may free it, or submit it again). Thread-safe: any thread may submit. on_complete must not
// block on I/O of this queue (in ring mode it runs on the one thread that reaps completions).
// The destructor waits for every submitted request (and any submitted from callbacks) to
// complete, then stops the completion thread; it must not run on that thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "bounce/io_tap.h"
#include "bounce/status.h"

namespace stablefs {

struct IoRequest {
  enum class Op { kRead, kWrite, kFlush };
  Op op = Op::kRead;
  uint64_t offset = 0;     // bytes; aligned to the device's logical block size
  std::vector<iovec> iov;  // memory, each segment aligned to the device's memory alignment
  std::function<void(IoRequest&, int64_t result)> on_complete;  // bytes, or -errno

  // Used by the queue; callers leave these alone. Reset before on_complete is called.
  uint64_t done_bytes = 0;  // transferred so far
  size_t iov_index = 0;     // first segment not fully transferred
  size_t iov_offset = 0;    // bytes of iov[iov_index] already transferred
  unsigned retries = 0;     // EINTR/EAGAIN resubmissions
  std::vector<iovec> rest;  // the remainder of iov, when a short transfer is resubmitted
  std::optional<int64_t> tapped;  // the result an IoTap answered with instead of the device
};

class IoQueue {
 public:
  enum class Mode { kRing, kInline };

  // fd is an O_DIRECT file descriptor the caller keeps open for the queue's lifetime.
  // registered (optional): one memory range to register as fixed buffer 0. A request whose
  // (remaining) memory is one segment inside it is sent as READ_FIXED/WRITE_FIXED. If the
  // kernel refuses the registration (memlock limit), the queue works without fixed buffers.
  // tap (optional, not owned, must outlive the queue): sees every request (bounce/io_tap.h).
  // mode kInline: depth and registered are unused (the queue has no ring).
  static Result<std::unique_ptr<IoQueue>> create(int fd, unsigned depth, const iovec* registered = nullptr,
                                                 IoTap* tap = nullptr, Mode mode = Mode::kRing);
  ~IoQueue();
  IoQueue(const IoQueue&) = delete;
  IoQueue& operator=(const IoQueue&) = delete;

  void submit(IoRequest* req);

  // Convenience for synchronous callers: submits and waits; returns bytes or a Status whose
  // message names the operation and the device byte offset. EDEADLK on the completion thread.
  Result<uint64_t> run(IoRequest::Op op, uint64_t offset, std::vector<iovec> iov);

  uint64_t submitted() const;    // SQEs the kernel accepted (resubmissions included); inline: system calls made
  uint64_t enter_calls() const;  // io_uring_enter system calls made for submission
  uint64_t fixed_ios() const;    // SQEs sent as READ_FIXED/WRITE_FIXED
  uint64_t resubmits() const;    // short transfers continued and EINTR/EAGAIN retries
  bool fixed_buffers() const;    // whether the registered range was accepted
  unsigned depth() const;
  Mode mode() const;

 private:
  struct Impl;
  explicit IoQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stablefs
