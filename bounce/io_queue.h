// IoQueue: asynchronous device I/O through io_uring (liburing).
//
// submit() queues a request and returns; requests are batched into one io_uring_enter per
// burst where the kernel allows. A completion thread reaps completions and calls each
// request's on_complete exactly once, from that thread, with the total bytes transferred or a
// negative errno. Short transfers are continued (the rest resubmitted) and EINTR/EAGAIN
// retried, so a request completes either fully (result == length) or with the device's error
// for that request alone. Memory inside the registered arena (BouncePool::arena()) is
// submitted as fixed buffers.
//
// The caller owns each IoRequest and its memory until on_complete has been called; the queue
// owns neither. Thread-safe: any thread may submit. submit() may block briefly while the ring
// is full. The destructor waits for every submitted request to complete.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "bounce/status.h"

namespace stablefs {

struct IoRequest {
  enum class Op { kRead, kWrite, kFlush };
  Op op = Op::kRead;
  uint64_t offset = 0;     // bytes; aligned to the device's logical block size
  std::vector<iovec> iov;  // memory, each segment aligned to the device's memory alignment
  std::function<void(IoRequest&, int64_t result)> on_complete;  // bytes, or -errno

  // Used by the queue; callers leave these alone.
  uint64_t done_bytes = 0;
  size_t iov_index = 0;
};

class IoQueue {
 public:
  // fd is an O_DIRECT file descriptor the caller keeps open for the queue's lifetime.
  // registered (optional): one memory range to register as fixed buffer 0.
  static Result<std::unique_ptr<IoQueue>> create(int fd, unsigned depth, const iovec* registered = nullptr);
  ~IoQueue();
  IoQueue(const IoQueue&) = delete;
  IoQueue& operator=(const IoQueue&) = delete;

  void submit(IoRequest* req);

  // Convenience for synchronous callers: submits and waits; returns bytes or a Status.
  Result<uint64_t> run(IoRequest::Op op, uint64_t offset, std::vector<iovec> iov);

  uint64_t submitted() const;
  uint64_t enter_calls() const;  // io_uring_enter system calls made for submission

 private:
  struct Impl;
  explicit IoQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stablefs
