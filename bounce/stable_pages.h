// The stable-pages policy: does the device under a filesystem demand that data stay unchanged
// while it is being written, and so must direct I/O be bounced?
//
// A block device demands stable pages when its queue/stable_writes in sysfs is 1 (zram,
// integrity/PI devices, parity RAID). For an image file it is the block device holding the
// file's filesystem that counts (st_dev of the file); when that is an anonymous device (tmpfs,
// overlay, btrfs subvolumes) the mount's source in /proc/self/mountinfo is tried, and if that
// is no block device either, stable pages are not required and the reason says why.
// Partitions take their whole disk's queue. Pure queries of sysfs, mountinfo and stat();
// thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "bounce/status.h"

namespace stablefs {

struct StablePagesInfo {
  bool required = false;
  // e.g. "/dev/zram0 (252:0): queue/stable_writes=1"; for an image file
  // "/var/tmp/x.img on /dev/vda (254:0): queue/stable_writes=0"; a partition names its disk:
  // "/dev/sda2 (8:2) on disk /dev/sda: queue/stable_writes=0". An unreadable attribute counts
  // as required (bouncing is always correct).
  std::string reason;
  // The block device the answer is about ("/dev/vda", "/dev/sda2" for a partition, or
  // "MAJ:MIN" when it has no name); empty when there is none.
  std::string device;
};

// What path (a block device or an image file) sits on. Errors (path missing, sysfs
// unreadable) name the path and the cause.
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
