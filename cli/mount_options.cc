#include "cli/mount_options.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace stablefs::cli {

std::string parse_options(const std::vector<std::string>& lists, MountConfig& cfg) {
  for (const std::string& list : lists) {
    std::stringstream ss(list);
    std::string opt;
    while (std::getline(ss, opt, ',')) {
      if (opt.empty()) continue;
      std::string key = opt.substr(0, opt.find('=')), value;
      const bool has_value = opt.find('=') != std::string::npos;
      if (has_value) value = opt.substr(opt.find('=') + 1);
      if (opt == "remount") cfg.remount = true;
      else if (opt == "ro") cfg.volume.read_only = cfg.fuse.read_only = true;
      else if (opt == "rw") cfg.volume.read_only = cfg.fuse.read_only = false;
      else if (opt == "allow_other") cfg.fuse.allow_other = true;
      else if (opt == "debug") cfg.fuse.debug = true;
      else if (opt == "uring" || opt == "nouring") cfg.fuse.uring = opt == "uring";
      else if (opt == "autodefrag" || opt == "noautodefrag") cfg.autodefrag = opt == "autodefrag";
      else if (key == "subtype" && has_value) cfg.fuse.subtype = value;  // empty: type "fuse" (xfstests)
      else if (key == "bounce" && has_value) {
        auto p = parse_bounce_policy(value);
        if (!p.ok()) return p.status().message();
        cfg.volume.bounce = *p;
      } else if (key == "submit" && has_value) {
        auto p = parse_submit_policy(value);
        if (!p.ok()) return p.status().message();
        cfg.volume.submit = *p;
      } else if (key == "commit" && has_value) {
        char* end = nullptr;
        errno = 0;
        unsigned long v = std::strtoul(value.c_str(), &end, 10);
        if (value.empty() || *end || errno || v > 86400) return "commit=" + value + ": not a number of seconds (0..86400)";
        cfg.commit_seconds = static_cast<unsigned>(v);
      } else if (key == "bounce_pool" && has_value) {
        char* end = nullptr;
        errno = 0;
        unsigned long v = std::strtoul(value.c_str(), &end, 10);
        if (value.empty() || *end || errno || v < 1 || v > 4096)
          return "bounce_pool=" + value + ": not a number of MiB (1..4096)";
        cfg.volume.bounce_pool_bytes = size_t{v} << 20;
      } else if (opt == "suid" || opt == "nosuid") {
        cfg.fuse.suid = opt == "suid";
      } else if (opt == "dev" || opt == "nodev") {
        cfg.fuse.dev = opt == "dev";
      } else if (opt == "exec" || opt == "noexec") {
        cfg.fuse.exec = opt == "exec";
      } else if (opt == "noatime") {
        cfg.fuse.atime = AtimePolicy::kNever;
      } else if (opt == "atime" || opt == "relatime" || opt == "nostrictatime") {
        cfg.fuse.atime = AtimePolicy::kRelative;  // "atime" is the default, relatime, as on Linux
      } else if (opt == "strictatime" || opt == "norelatime") {
        cfg.fuse.atime = AtimePolicy::kAlways;
      } else if (opt == "nodiratime" || opt == "diratime") {
        cfg.fuse.dir_atime = opt == "diratime";
      } else if (opt == "defaults" || opt == "noauto" || opt == "auto" || opt == "nofail" || opt == "_netdev" ||
                 opt == "user" || opt == "nouser" || opt == "users" || opt == "owner" || opt == "group" ||
                 key == "comment" || key.rfind("x-", 0) == 0 || opt == "async" || opt == "lazytime" ||
                 opt == "nolazytime" || opt == "default_permissions" || key == "user_id" || key == "group_id" ||
                 key == "rootmode" || key == "max_read" || key == "blksize" || key == "helper") {
        // fstab and mount(8) options with no meaning here: access checks are always the
        // kernel's (default_permissions), times reach the journal at the commit interval, and
        // the FUSE options /proc/mounts shows (user_id=, group_id=, ...; mount(8) passes them
        // back on a remount) are set by the mount itself, as is helper= (its utab entry).
      } else {
        return "unknown mount option '" + opt + "'";
      }
    }
  }
  return "";
}

}  // namespace stablefs::cli
