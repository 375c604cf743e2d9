// The stable-pages policy: does the device under a filesystem demand that data stay unchanged
// while it is being written, and so must direct I/O be bounced?
//
// A block device demands stable pages when its queue/stable_writes in sysfs is 1 (zram,
// integrity/PI devices, parity RAID). For an image file it is the block device holding the
// file's filesystem that counts. Partitions take their whole disk's queue. Pure queries of
// sysfs and stat(); thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "bounce/status.h"

namespace stablefs {

struct StablePagesInfo {
  bool required = false;
  std::string reason;  // e.g. "/dev/zram0 (252:0): queue/stable_writes=1"
};

// What path (a block device or an image file) sits on. Errors name the path.
Result<StablePagesInfo> detect_stable_pages(const std::string& path);

enum class BouncePolicy { kAuto, kAlways, kNever };
// "auto", "always", "never"; anything else is EINVAL with a one-line message.
Result<BouncePolicy> parse_bounce_policy(std::string_view text);
const char* bounce_policy_name(BouncePolicy p);

struct BounceDecision {
  bool bounce = false;
  std::string reason;  // e.g. "auto: /dev/zram0 (252:0): queue/stable_writes=1"
};
BounceDecision decide_bounce(BouncePolicy policy, const StablePagesInfo& device);

}  // namespace stablefs
