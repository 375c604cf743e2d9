// Changing a live stablefs mount: `stablefs mount -o remount,OPTIONS [DEVICE] MOUNTPOINT`, which
// is also what `mount -o remount,ro|rw MOUNTPOINT` runs (mount(8) hands the helper the mount's
// current options merged with the new ones), and the kernel's half of a mount's flags.
//
// A remount has two halves: the kernel's mount flags (read-only, nosuid, nodev, noexec, the
// atime flags: mount(2) with MS_REMOUNT, which the kernel enforces itself) and the daemon's
// settings (its store read-only or writable, its atime policy: the control socket's
// "remount"). Going read-only the kernel goes first, so that it refuses with EBUSY while a
// file is open for writing and nothing changed; then the daemon writes everything home and
// marks the filesystem clean. Going read-write the daemon goes first (it refuses a mount that
// was read-only from the start). If the second half fails the first is undone.
#pragma once

#include <string>
#include <vector>

#include "bounce/status.h"
#include "cli/mount_options.h"

namespace stablefs::cli {

// mount(2) with MS_REMOUNT on mountpoint, setting the flags cfg describes (cfg.fuse: read_only,
// suid, dev, exec, atime, dir_atime). Also used right after a mount with strictatime or
// nodiratime, which libfuse cannot pass, so that /proc/mounts shows what the daemon does.
Status set_kernel_mount_flags(const std::string& mountpoint, const MountConfig& cfg);

// The remount command: applies option_lists (cfg.remount set by them) to the mount at
// mountpoint. They change what they name and the rest stays as the mount has it, unless
// complete: then they are the mount's whole option set, as mount(8) hands its helper (it
// merges the mount's options with the new ones and leaves out the defaults: "suid" turns
// "nosuid" off by dropping it), and what they do not name takes its default. Returns the exit
// status (0, or 1 after a one-line error).
int run_remount(const std::string& mountpoint, const std::vector<std::string>& option_lists, bool complete);

}  // namespace stablefs::cli
