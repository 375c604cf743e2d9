// What sysfs says about a block device: its directory, its name, and the disk a partition is
// on. Shared by the device probes of the bounce layer (stable_pages.h, submission.h).
// Pure queries of sysfs; thread-safe.
#pragma once

#include <sys/types.h>

#include <string>

namespace stablefs {

// "MAJ:MIN".
std::string devno_string(dev_t dev);
// "/sys/dev/block/MAJ:MIN" (a symlink into /sys/devices).
std::string block_sysfs_dir(dev_t dev);
// Whether path exists.
bool sysfs_exists(const std::string& path);
// "/dev/NAME" from a sysfs device directory's uevent, or "" when it has no DEVNAME.
std::string devname_from_uevent(const std::string& sysdir);
// "/dev/zram0 (252:0)", or "252:0" alone when udev gave the device no name.
std::string describe_block_device(const std::string& name, dev_t dev);

// The sysfs directory holding dev's queue: dev's own, or for a partition its disk's (a
// partition has no queue of its own). disk_name: the disk's /dev name for a partition, else "".
struct QueueDir {
  std::string dir;        // ".../queue" is under it
  std::string disk_name;  // set for a partition only
};
QueueDir queue_owner_dir(dev_t dev);

}  // namespace stablefs
