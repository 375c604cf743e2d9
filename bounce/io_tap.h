// IoTap: the seam of the asynchronous data path. An IoQueue created with a tap shows it every
// request around the device, so a test (or a recording layer) can see data writes and flushes
// in order, fail chosen requests, or change what a read returned — without a device that
// misbehaves. The synchronous metadata path has its own seam (BlockDevice wrappers).
//
// Both calls may come from any thread at once (before_submit on submitters, after_complete on
// the queue's completion thread, or with an inline queue on the submitter): an
// implementation locks what it shares. Neither may submit
// to the queue or block on its I/O. The request and its memory belong to its owner; a tap
// only looks (and, in after_complete of a read, may change the bytes read).
#pragma once

#include <cstdint>
#include <optional>

namespace stablefs {

struct IoRequest;

class IoTap {
 public:
  virtual ~IoTap() = default;
  // Before req (a new request, not a continuation of a short transfer) reaches the device.
  // A value answers it instead: the device is not touched and on_complete gets that result
  // (bytes, or -errno), from where completions always run.
  virtual std::optional<int64_t> before_submit(const IoRequest& req) = 0;
  // req completed with result (its whole length, or -errno); returns the result its owner
  // sees. For a read, req.iov holds the bytes the device returned.
  virtual int64_t after_complete(const IoRequest& req, int64_t result) = 0;
};

}  // namespace stablefs
