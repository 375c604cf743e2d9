// The submission policy: does a device's I/O go through io_uring (a completion thread answers
// it) or does the submitting thread make the system call itself (IoQueue::Mode)?
//
// io_uring first tries to start a request without blocking. A blk-mq device (NVMe, virtio,
// loop, SCSI) accepts it that way and completes it later from an interrupt. A bio-based
// device with no device under it (zram, brd) does its work while the request is submitted, in
// the submitter's context, so io_uring cannot start it without blocking and hands it to a
// kernel worker thread; the completion then wakes the queue's completion thread. On such a
// device the submitter doing the work itself saves two thread switches per request. A bio-
// based device stacked on others (device-mapper, md) passes its requests on and completes
// them later: io_uring. So does an image file (the filesystem under it decides, and direct I/O
// to a file starts without blocking on the filesystems this runs on).
//
// Pure queries of sysfs and stat(); thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "bounce/io_queue.h"
#include "bounce/status.h"

namespace stablefs {

struct SubmissionInfo {
  bool works_in_submitter = false;
  // e.g. "/dev/zram0 (252:0): bio-based, no device under it: does its work in the
  // submitter's context"; "/dev/loop0 (7:0): blk-mq"; "/var/tmp/x.img: an image file".
  std::string reason;
};

// What path (a block device or an image file) is. Errors (path missing) name the path and
// the cause.
Result<SubmissionInfo> detect_submission(const std::string& path);

enum class SubmitPolicy { kAuto, kRing, kInline };
// "auto", "ring", "inline"; anything else is EINVAL with a one-line message.
Result<SubmitPolicy> parse_submit_policy(std::string_view text);
const char* submit_policy_name(SubmitPolicy p);

struct SubmitDecision {
  IoQueue::Mode mode = IoQueue::Mode::kRing;
  std::string reason;  // e.g. "auto: /dev/loop0 (7:0): blk-mq"; "inline: set by submit=inline"
};
SubmitDecision decide_submission(SubmitPolicy policy, const SubmissionInfo& device);

}  // namespace stablefs
