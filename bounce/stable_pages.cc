#include "bounce/stable_pages.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "bounce/block_sysfs.h"

namespace stablefs {
namespace {

// Reads the stable_writes queue attribute of block device dev (a partition takes its disk's)
// and describes the device in reason.
StablePagesInfo query_block_device(dev_t dev) {
  StablePagesInfo info;
  std::string name = devname_from_uevent(block_sysfs_dir(dev));
  info.device = name.empty() ? devno_string(dev) : name;
  info.reason = describe_block_device(name, dev);
  const QueueDir owner = queue_owner_dir(dev);
  if (!owner.disk_name.empty()) {
    info.reason += " on disk ";
    info.reason += owner.disk_name;
  }
  std::ifstream in(owner.dir + "/queue/stable_writes");
  long v = 0;
  if (in >> v) {
    info.required = v != 0;
    info.reason += ": queue/stable_writes=";
    info.reason += std::to_string(v);
  } else {
    // Not knowing is treated as "required": bouncing is always correct, merely slower.
    info.required = true;
    info.reason += ": queue/stable_writes unreadable, assuming stable pages are required";
  }
  return info;
}

struct MountSource {
  std::string fstype;
  std::string source;
};

// The mount of anonymous device dev in /proc/self/mountinfo (fields: id parent MAJ:MIN root
// mountpoint options [optional...] - fstype source superoptions).
MountSource find_mount(dev_t dev) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string want = devno_string(dev);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno;
    if (!(fields >> id >> parent >> devno) || devno != want) continue;
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    MountSource m;
    tail >> m.fstype >> m.source;
    return m;
  }
  return {};
}

}  // namespace

Result<StablePagesInfo> detect_stable_pages(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    std::string msg = path;
    msg += ": cannot stat: ";
    msg += std::strerror(err);
    return Status::error(err, msg);
  }
  if (S_ISBLK(st.st_mode)) {
    if (!sysfs_exists(block_sysfs_dir(st.st_rdev))) {
      std::string msg = path;
      msg += ": block device ";
      msg += devno_string(st.st_rdev);
      msg += " has no ";
      msg += block_sysfs_dir(st.st_rdev);
      msg += " (is sysfs mounted?)";
      return Status::error(ENOENT, msg);
    }
    return query_block_device(st.st_rdev);
  }

  // An image file: the block device under its filesystem decides.
  dev_t dev = st.st_dev;
  std::string prefix = path;
  prefix += " on ";
  if (sysfs_exists(block_sysfs_dir(dev))) {
    StablePagesInfo info = query_block_device(dev);
    info.reason.insert(0, prefix);
    return info;
  }
  // An anonymous device (tmpfs, overlay, btrfs): try the mount's source.
  MountSource m = find_mount(dev);
  struct stat src {};
  if (!m.source.empty() && m.source[0] == '/' && ::stat(m.source.c_str(), &src) == 0 && S_ISBLK(src.st_mode) &&
      sysfs_exists(block_sysfs_dir(src.st_rdev))) {
    StablePagesInfo info = query_block_device(src.st_rdev);
    std::string r = prefix;
    r += m.fstype;
    r += ' ';
    r += devno_string(dev);
    r += " from ";
    r += info.reason;
    info.reason = std::move(r);
    return info;
  }
  StablePagesInfo info;
  info.required = false;
  info.reason = prefix;
  info.reason += devno_string(dev);
  if (!m.fstype.empty()) {
    info.reason += " (";
    info.reason += m.fstype;
    info.reason += ')';
  }
  info.reason += ", not a block device: stable pages not required";
  return info;
}

Result<BouncePolicy> parse_bounce_policy(std::string_view text) {
  if (text == "auto") return BouncePolicy::kAuto;
  if (text == "always") return BouncePolicy::kAlways;
  if (text == "never") return BouncePolicy::kNever;
  std::string msg = "invalid bounce policy '";
  msg += text;
  msg += "': expected auto, always or never";
  return Status::error(EINVAL, msg);
}

const char* bounce_policy_name(BouncePolicy p) {
  switch (p) {
    case BouncePolicy::kAuto:
      return "auto";
    case BouncePolicy::kAlways:
      return "always";
    case BouncePolicy::kNever:
      return "never";
  }
  return "auto";
}

BounceDecision decide_bounce(BouncePolicy policy, const StablePagesInfo& device) {
  BounceDecision d;
  switch (policy) {
    case BouncePolicy::kAuto:
      d.bounce = device.required;
      d.reason = "auto: ";
      d.reason += device.reason;
      break;
    case BouncePolicy::kAlways:
      d.bounce = true;
      d.reason = "always: set by bounce=always";
      break;
    case BouncePolicy::kNever:
      d.bounce = false;
      d.reason = "never: set by bounce=never";
      break;
  }
  return d;
}

}  // namespace stablefs
