#include "bounce/block_sysfs.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>

namespace stablefs {

std::string devno_string(dev_t dev) {
  std::string s = std::to_string(major(dev));
  s += ':';
  s += std::to_string(minor(dev));
  return s;
}

std::string block_sysfs_dir(dev_t dev) {
  std::string s = "/sys/dev/block/";
  s += devno_string(dev);
  return s;
}

bool sysfs_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::string devname_from_uevent(const std::string& sysdir) {
  std::ifstream in(sysdir + "/uevent");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("DEVNAME=", 0) == 0 && line.size() > 8) {
      std::string name = "/dev/";
      name += line.substr(8);
      return name;
    }
  }
  return {};
}

std::string describe_block_device(const std::string& name, dev_t dev) {
  if (name.empty()) return devno_string(dev);
  std::string s = name;
  s += " (";
  s += devno_string(dev);
  s += ')';
  return s;
}

QueueDir queue_owner_dir(dev_t dev) {
  const std::string sysdir = block_sysfs_dir(dev);
  if (!sysfs_exists(sysdir + "/partition")) return {sysdir, {}};
  // /sys/dev/block/M:m resolves to .../block/DISK/PART, so the disk is one level up.
  std::string disk_dir = sysdir + "/..";
  std::string disk = devname_from_uevent(disk_dir);
  return {std::move(disk_dir), std::move(disk)};
}

}  // namespace stablefs
