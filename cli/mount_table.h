// The userspace mount table (libmount's utab, /run/mount/utab): how a stablefs mount asks
// umount(8) to unmount it through /sbin/umount.stablefs.
//
// umount(8) (util-linux 2.38) identifies a mount by statfs(2) alone when the utab has no entry
// for it: every FUSE mount is then type "fuse" and only /sbin/umount.fuse would be run, so a
// plain `umount MNT` would call umount(2) itself and return before the daemon has committed
// and released the device. With an entry carrying the user option "helper=stablefs", umount(8)
// reads the mount table and runs "/sbin/umount.stablefs MNT [-l...]" (whatever the type,
// fuse.stablefs or plain fuse), which unmounts and waits (cmd_mount.cc's run_umount).
// Registration needs a writable utab (root); without one it is a no-op.
// Not thread-safe with respect to fork: call while the process has one thread.
#pragma once

#include <string>

namespace stablefs::cli {

// Adds the utab entry "SRC=source TARGET=target OPTS=helper=stablefs" for a mount of type
// fstype, replacing stale entries for target (left by a killed daemon). Best effort: returns
// false when the utab cannot be written (not root).
bool register_umount_helper(const std::string& source, const std::string& target, const std::string& fstype);

// Removes the utab entries of the mount at target, if any (after the unmount, so a
// later mount at the same place does not inherit it). Best effort.
void unregister_umount_helper(const std::string& target);

}  // namespace stablefs::cli
