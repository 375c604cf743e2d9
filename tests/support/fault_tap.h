// FaultTap: an IoTap (bounce/io_tap.h) for tests of the data path that need a device which
// misbehaves on cue: the next n reads covering a device byte return it flipped (a transient
// when n is 1, a persistent corruption when it covers the re-read too), or fail with an errno
// without reaching the device; the next n reads or writes wherever they go fail with an errno
// without reaching the device; the next n writes reach the device and then report only half
// their length done (a short transfer). Thread-safe.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <mutex>
#include <optional>

#include "bounce/io_queue.h"
#include "bounce/io_tap.h"

namespace stablefs::test {

class FaultTap : public IoTap {
 public:
  // The next n reads that cover device byte `at` return it with its bits inverted.
  void corrupt_reads(uint64_t at, unsigned n) {
    std::lock_guard<std::mutex> g(mu_);
    corrupt_at_ = at;
    corrupt_left_ = n;
  }
  // The next n reads that cover device byte `at` fail with -err, the device untouched.
  void fail_reads(uint64_t at, unsigned n, int err) {
    std::lock_guard<std::mutex> g(mu_);
    fail_at_ = at;
    fail_left_ = n;
    fail_errno_ = err;
  }
  // The next n reads, anywhere, fail with -err.
  void fail_reads_any(unsigned n, int err) {
    std::lock_guard<std::mutex> g(mu_);
    fail_any_reads_ = n;
    fail_errno_ = err;
  }
  // The next n writes fail with -err, the device untouched.
  void fail_writes(unsigned n, int err) {
    std::lock_guard<std::mutex> g(mu_);
    fail_writes_ = n;
    fail_errno_ = err;
  }
  // The next n writes complete on the device but report half their length (whole sectors).
  void tear_writes(unsigned n) {
    std::lock_guard<std::mutex> g(mu_);
    tear_writes_ = n;
  }
  // Faults armed and not yet met.
  unsigned pending_faults() const {
    std::lock_guard<std::mutex> g(mu_);
    return fail_left_ + corrupt_left_ + fail_any_reads_ + fail_writes_ + tear_writes_;
  }
  unsigned reads_corrupted() const {
    std::lock_guard<std::mutex> g(mu_);
    return corrupted_;
  }

  std::optional<int64_t> before_submit(const IoRequest& req) override {
    std::lock_guard<std::mutex> g(mu_);
    if (req.op == IoRequest::Op::kWrite && fail_writes_ > 0) {
      --fail_writes_;
      return -fail_errno_;
    }
    if (req.op == IoRequest::Op::kRead && fail_any_reads_ > 0) {
      --fail_any_reads_;
      return -fail_errno_;
    }
    if (req.op != IoRequest::Op::kRead || fail_left_ == 0 || !covers(req, fail_at_)) return std::nullopt;
    --fail_left_;
    return -fail_errno_;
  }

  int64_t after_complete(const IoRequest& req, int64_t result) override {
    std::lock_guard<std::mutex> g(mu_);
    if (req.op == IoRequest::Op::kWrite && result > 0 && tear_writes_ > 0) {
      --tear_writes_;
      return result / 2 / 512 * 512;
    }
    if (req.op != IoRequest::Op::kRead || result <= 0 || corrupt_left_ == 0 || !covers(req, corrupt_at_)) return result;
    uint64_t skip = corrupt_at_ - req.offset;
    for (const iovec& v : req.iov) {
      if (skip < v.iov_len) {
        static_cast<uint8_t*>(v.iov_base)[skip] ^= 0xFF;
        --corrupt_left_;
        ++corrupted_;
        break;
      }
      skip -= v.iov_len;
    }
    return result;
  }

 private:
  static bool covers(const IoRequest& req, uint64_t at) {
    uint64_t len = 0;
    for (const iovec& v : req.iov) len += v.iov_len;
    return at >= req.offset && at - req.offset < len;
  }

  mutable std::mutex mu_;
  uint64_t corrupt_at_ = 0;
  unsigned corrupt_left_ = 0;
  unsigned corrupted_ = 0;
  uint64_t fail_at_ = 0;
  unsigned fail_left_ = 0;
  int fail_errno_ = 0;
  unsigned fail_any_reads_ = 0;
  unsigned fail_writes_ = 0;
  unsigned tear_writes_ = 0;
};

}  // namespace stablefs::test
